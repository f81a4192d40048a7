"""AWS KMS and S3 through a real AWS-protocol peer: moto_server on 127.0.0.1.

(moto does not enforce DisableKey, so revocation is shown with the local KMS in test_keys.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.runtime import Runtime
from compliance.purge import purge_due_tenants
from kernel.db import utcnow
from migrations.runner import migrate
from tests.support.aws import AWS_REGIONS, aws_settings
from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle, context_of

SENTINEL = b"SENTINEL-aws-envelope-6c1d"


def client(service: str, region: str, endpoint: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint)


@pytest.fixture(scope="module")
async def aws(
    moto_endpoint: str, aws_env: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    settings = aws_settings(tmp_path_factory.mktemp("aws"), moto_endpoint)
    await asyncio.to_thread(migrate, settings)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as test_client:
        yield {"settings": settings, "client": test_client, "endpoint": moto_endpoint}


@pytest.fixture
async def aws_runtime(aws: dict[str, Any]) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(aws["settings"])
    yield runtime
    await runtime.dispose()


def test_buckets_are_created_in_their_own_region(aws: dict[str, Any]) -> None:
    for name, aws_region in AWS_REGIONS.items():
        bucket = aws["settings"].regions[name].object_store.removeprefix("s3://")
        location = client("s3", aws_region, aws["endpoint"]).get_bucket_location(Bucket=bucket)
        assert location["LocationConstraint"] == aws_region


async def test_tenant_key_and_sealed_objects_live_in_the_tenants_region(
    aws: dict[str, Any], aws_runtime: Runtime
) -> None:
    api = Api(aws["client"])
    tenant = await api.new_tenant("eu")
    kms_conf = (await api.client.get("/v1/admin/kms", headers=tenant.admin)).json()
    assert kms_conf["provider"] == "aws-kms"
    assert kms_conf["region"] == "eu-west-1"
    assert kms_conf["key_id"].startswith("arn:aws:kms:eu-west-1:")
    kms = client("kms", "eu-west-1", aws["endpoint"])
    tags = kms.list_resource_tags(KeyId=kms_conf["key_id"])["Tags"]
    assert {"TagKey": "bulwark:tenant", "TagValue": tenant.id} in tags

    ctx = context_of(tenant)
    async with aws_runtime.registry.tenant_transaction(ctx) as session:
        key = await aws_runtime.tenant_objects(session, ctx).put("document", "doc-1", SENTINEL)
    bucket = aws["settings"].regions["eu"].object_store.removeprefix("s3://")
    raw = client("s3", "eu-west-1", aws["endpoint"]).get_object(Bucket=bucket, Key=key)
    assert SENTINEL not in raw["Body"].read()
    assert key.startswith(uuid.UUID(tenant.id).hex + "/") and tenant.slug not in key
    us_bucket = aws["settings"].regions["us"].object_store.removeprefix("s3://")
    us_objects = client("s3", "us-west-2", aws["endpoint"]).list_objects_v2(Bucket=us_bucket)
    assert us_objects.get("KeyCount", 0) == 0
    async with aws_runtime.registry.tenant_transaction(ctx) as session:
        assert await aws_runtime.tenant_objects(session, ctx).get("document", "doc-1") == (SENTINEL)


async def test_data_keys_are_bound_to_their_encryption_context(
    aws: dict[str, Any], aws_runtime: Runtime
) -> None:
    api = Api(aws["client"])
    tenant = await api.new_tenant("eu")
    ctx = context_of(tenant)
    async with aws_runtime.registry.tenant_transaction(ctx) as session:
        row = await aws_runtime.keyring.for_tenant(session, ctx).keys.current()
    assert row is not None
    kms = client("kms", "eu-west-1", aws["endpoint"])
    right = {"tenant_id": tenant.id, "purpose": "bulwark-dek", "version": "1"}
    assert len(kms.decrypt(CiphertextBlob=row.wrapped, EncryptionContext=right)["Plaintext"]) == 32
    for wrong in ({**right, "tenant_id": str(uuid.uuid4())}, {**right, "version": "2"}, {}):
        with pytest.raises(ClientError, match="InvalidCiphertext"):
            kms.decrypt(CiphertextBlob=row.wrapped, EncryptionContext=wrong)


async def test_bring_your_own_aws_key_and_wrong_region_keys(
    aws: dict[str, Any], aws_runtime: Runtime
) -> None:
    api = Api(aws["client"])
    tenant: TenantHandle = await api.new_tenant("eu")
    ctx = context_of(tenant)
    async with aws_runtime.registry.tenant_transaction(ctx) as session:
        await aws_runtime.tenant_objects(session, ctx).put("document", "kept", SENTINEL)
    customer_eu = client("kms", "eu-west-1", aws["endpoint"]).create_key()["KeyMetadata"]["Arn"]
    customer_us = client("kms", "us-west-2", aws["endpoint"]).create_key()["KeyMetadata"]["Arn"]

    for body in (
        {"provider": "aws-kms", "key_id": customer_us, "region": "us-west-2"},
        {"provider": "aws-kms", "key_id": customer_us, "region": "eu-west-1"},
    ):
        assert_problem(
            await api.client.put("/v1/admin/kms", json=body, headers=tenant.admin),
            422,
            "kms_key_wrong_region",
        )
    missing = customer_eu.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    assert_problem(
        await api.client.put(
            "/v1/admin/kms",
            json={"provider": "aws-kms", "key_id": missing, "region": "eu-west-1"},
            headers=tenant.admin,
        ),
        422,
        "kms_key_rejected",
    )

    response = await api.client.put(
        "/v1/admin/kms",
        json={"provider": "aws-kms", "key_id": customer_eu, "region": "eu-west-1"},
        headers=tenant.admin,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["key_id"], response.json()["managed"]) == (customer_eu, False)
    rotated = await api.client.post("/v1/admin/kms/rotate", headers=tenant.admin)
    assert rotated.json()["config"]["current_version"] == 2

    fresh = Runtime.build(aws["settings"])  # an empty DEK cache: unwraps go to KMS
    try:
        async with fresh.registry.tenant_transaction(ctx) as session:
            keys = fresh.keyring.for_tenant(session, ctx)
            assert {r.kms_key_id for r in await keys.keys.all_versions()} == {customer_eu}
            assert await fresh.tenant_objects(session, ctx).get("document", "kept") == SENTINEL
    finally:
        await fresh.dispose()


async def test_purge_schedules_deletion_of_the_platform_managed_key(
    aws: dict[str, Any], aws_runtime: Runtime
) -> None:
    api = Api(aws["client"])
    tenant = await api.new_tenant("us")
    key_id = (await api.client.get("/v1/admin/kms", headers=tenant.admin)).json()["key_id"]
    assert key_id.startswith("arn:aws:kms:us-west-2:")
    await api.client.delete(f"/v1/tenants/{tenant.id}", headers=api.operator)
    later = utcnow() + timedelta(days=30)
    await purge_due_tenants(
        aws_runtime.control, aws_runtime.registry, aws_runtime.keyring, aws_runtime.system, later
    )
    state = client("kms", "us-west-2", aws["endpoint"]).describe_key(KeyId=key_id)
    assert state["KeyMetadata"]["KeyState"] == "PendingDeletion"


async def test_assumed_role_credentials_are_never_shared_across_tenants(
    moto_endpoint: str, aws_env: None
) -> None:
    """Tenant B names tenant A's role ARN with its own (wrong) external id, or none, while A's
    client is cached: B's call assumes the role itself, with B's external id, so the role's
    trust policy decides (moto does not evaluate trust policies; that AWS refuses a wrong
    ExternalId is AWS's part). A's next call reuses A's credentials."""
    from keys.adapters.aws import AwsKms
    from keys.kms import KeyRef

    region = "eu-west-1"
    key_id = client("kms", region, moto_endpoint).create_key()["KeyMetadata"]["KeyId"]
    role = "arn:aws:iam::123456789012:role/customer-kms"
    assumed: list[tuple[str, str | None]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        assumed.append((params["RoleArn"], params.get("ExternalId")))

    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("provide-client-params.sts.AssumeRole", record)
    kms = AwsKms(default_region=region, endpoint_url=moto_endpoint)

    def ref(tenant: str, external_id: str | None) -> KeyRef:
        return KeyRef("aws-kms", key_id, region, role, external_id, tenant)

    context = {"purpose": "test"}
    await kms.generate_data_key(ref("tenant-a", "a-secret"), context)
    await kms.generate_data_key(ref("tenant-b", "guessed"), context)
    await kms.generate_data_key(ref("tenant-b", None), context)
    await kms.generate_data_key(ref("tenant-a", "a-secret"), context)
    assert assumed == [(role, "a-secret"), (role, "guessed"), (role, None)]
