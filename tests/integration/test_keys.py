"""Envelope encryption through the API and the stores: BYOK, rotation, revocation, shredding."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from app.runtime import Runtime
from compliance.purge import purge_due_tenants
from kernel.db import utcnow
from keys.adapters.local import LocalKms
from keys.kms import KeyAccessDenied, KeyRef
from keys.services import dek_context
from tests.support.deployments import Deployment, raw_pg_dsn
from tests.support.http import assert_problem
from tests.support.keys import get_object, put_object
from tests.support.tenants import Api, context_of

SENTINEL = b"SENTINEL-7f3a-quarterly-forecast-do-not-leak"


def local_kms(deployment: Deployment, region: str) -> LocalKms:
    return LocalKms(Path(deployment.settings.regions[region].kms.key_file or ""))


async def raw_database_text(deployment: Deployment, region: str) -> bytes:
    """Everything the region's database holds, as raw bytes (files or a full row dump)."""
    if deployment.backend == "sqlite":
        root = deployment.settings.data_dir / "regions" / region
        return b"".join(p.read_bytes() for p in root.glob("bulwark.db*"))
    conn = await asyncpg.connect(raw_pg_dsn(deployment.databases[region]))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        dump = b""
        for row in tables:
            for record in await conn.fetch(f'SELECT * FROM "{row["tablename"]}"'):
                dump += repr(tuple(record)).encode()
        return dump
    finally:
        await conn.close()


async def test_new_tenant_gets_its_own_managed_key(api: Api) -> None:
    tenant = await api.new_tenant("eu")
    kms = await api.client.get("/v1/admin/kms", headers=tenant.admin)
    assert kms.status_code == 200
    body = kms.json()
    assert (body["provider"], body["region"], body["managed"]) == ("local", "eu", True)
    assert (body["current_version"], body["versions"]) == (1, 1)
    other = await api.new_tenant("eu")
    assert (await api.client.get("/v1/admin/kms", headers=other.admin)).json()["key_id"] != (
        body["key_id"]
    )


async def test_sealed_objects_round_trip_and_stay_sealed_at_rest(
    api: Api, runtime: Runtime, deployment: Deployment
) -> None:
    tenant = await api.new_tenant("eu")
    object_id = uuid.uuid4().hex
    await put_object(runtime, tenant, object_id, SENTINEL)
    assert await get_object(runtime, tenant, object_id) == SENTINEL
    stored = deployment.settings.data_dir / "regions/eu/objects" / uuid.UUID(tenant.id).hex
    files = list(stored.rglob("*"))
    assert any(f.is_file() for f in files)
    assert all(SENTINEL not in f.read_bytes() for f in files if f.is_file())
    assert all(tenant.slug not in str(f) for f in files)


async def test_rotation_keeps_old_data_readable(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant("eu")
    await put_object(runtime, tenant, "before", b"old data")
    rotated = await api.client.post("/v1/admin/kms/rotate", headers=tenant.admin)
    assert rotated.status_code == 200
    assert rotated.json()["config"]["current_version"] == 2
    await put_object(runtime, tenant, "after", b"new data")
    assert await get_object(runtime, tenant, "before") == b"old data"
    assert await get_object(runtime, tenant, "after") == b"new data"


async def test_bring_your_own_key_rewraps_existing_data_keys(
    api: Api, runtime: Runtime, deployment: Deployment
) -> None:
    tenant = await api.new_tenant("eu")
    await api.client.post("/v1/admin/kms/rotate", headers=tenant.admin)
    await put_object(runtime, tenant, "kept", b"still readable")
    own = local_kms(deployment, "eu").create_key_sync("customer key", owner=tenant.id)

    response = await api.client.put(
        "/v1/admin/kms",
        json={"provider": "local", "key_id": own.key_id, "region": "eu"},
        headers=tenant.admin,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["key_id"], response.json()["managed"]) == (own.key_id, False)
    await asyncio.sleep(1.1)  # past the DEK cache: the next open must unwrap under the new key
    assert await get_object(runtime, tenant, "kept") == b"still readable"
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        rows = await runtime.keyring.for_tenant(session, ctx).keys.all_versions()
    assert [r.kms_key_id for r in rows] == [own.key_id, own.key_id]
    events = (
        await api.client.get(
            "/v1/audit/events", params={"resource_type": "kms_key"}, headers=tenant.admin
        )
    ).json()["items"]
    assert [(e["action"], e["detail"]["rewrapped"]) for e in events] == [
        ("kms.rotated", 0),
        ("kms.configured", 2),
    ]
    assert events[1]["resource_id"] == own.key_id


async def test_keys_of_other_regions_tenants_or_nowhere_are_refused(
    api: Api, deployment: Deployment
) -> None:
    tenant = await api.new_tenant("eu")
    neighbour = await api.new_tenant("eu")
    neighbours_key = (await api.client.get("/v1/admin/kms", headers=neighbour.admin)).json()
    us_key = local_kms(deployment, "us").create_key_sync("us key", owner=tenant.id)
    cases = [
        ({"provider": "local", "key_id": us_key.key_id, "region": "us"}, "kms_key_wrong_region"),
        ({"provider": "local", "key_id": us_key.key_id, "region": "eu"}, "kms_key_rejected"),
        ({"provider": "local", "key_id": "local-missing", "region": "eu"}, "kms_key_rejected"),
        (
            {"provider": "aws-kms", "key_id": "arn:aws:kms:eu-west-1:1:key/x", "region": "eu"},
            "kms_provider_unsupported",
        ),
        (
            {"provider": "local", "key_id": neighbours_key["key_id"], "region": "eu"},
            "kms_key_rejected",
        ),
    ]
    for body, code in cases:
        assert_problem(
            await api.client.put("/v1/admin/kms", json=body, headers=tenant.admin), 422, code
        )
    after = (await api.client.get("/v1/admin/kms", headers=tenant.admin)).json()
    assert after["managed"] is True  # nothing was saved


async def test_revoked_key_fails_closed_within_the_cache_ttl(
    api: Api, runtime: Runtime, deployment: Deployment
) -> None:
    tenant = await api.new_tenant("eu")
    await put_object(runtime, tenant, "sentinel", SENTINEL)
    key_id = (await api.client.get("/v1/admin/kms", headers=tenant.admin)).json()["key_id"]
    kms = local_kms(deployment, "eu")

    kms.set_state(key_id, "disabled")  # the customer revokes access
    await asyncio.sleep(1.1)  # the DEK cache TTL of the test deployment
    for path in ("/v1/admin/users", "/v1/admin/groups", "/v1/admin/api-keys", "/v1/me"):
        assert_problem(
            await api.client.get(path, headers=tenant.admin), 503, "tenant_key_unavailable"
        )
    response = await api.client.post("/v1/admin/groups", json={"name": "x"}, headers=tenant.admin)
    assert_problem(response, 503, "tenant_key_unavailable")
    # The admin can still see (and replace) the key configuration.
    assert (await api.client.get("/v1/admin/kms", headers=tenant.admin)).status_code == 200

    raw = await raw_database_text(deployment, "eu")
    objects = deployment.settings.data_dir / "regions/eu/objects"
    assert SENTINEL not in raw
    assert all(SENTINEL not in f.read_bytes() for f in objects.rglob("*") if f.is_file())

    kms.set_state(key_id, "enabled")
    assert (await api.client.get("/v1/admin/users", headers=tenant.admin)).status_code == 200
    assert await get_object(runtime, tenant, "sentinel") == SENTINEL
    groups = await api.client.get("/v1/admin/groups", headers=tenant.admin)
    assert groups.json()["items"] == []  # the refused write stored nothing


async def test_deleting_a_tenant_crypto_shreds_it_backups_included(
    api: Api, runtime: Runtime, deployment: Deployment, tmp_path: Path
) -> None:
    tenant = await api.new_tenant("eu")
    user = await api.new_user(tenant)
    await put_object(runtime, tenant, "sentinel", SENTINEL)
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        backup_rows = [
            (row.version, row.wrapped, row.kms_key_id)
            for row in await runtime.keyring.for_tenant(session, ctx).keys.all_versions()
        ]
    objects = deployment.settings.data_dir / "regions/eu/objects" / uuid.UUID(tenant.id).hex
    backup = tmp_path / "backup"
    shutil.copytree(objects, backup)

    deleted = await api.client.delete(f"/v1/tenants/{tenant.id}", headers=api.operator)
    assert deleted.status_code == 202
    assert deleted.json()["purge_after"] is not None
    assert_problem(await api.client.get("/v1/me", headers=tenant.admin), 403, "tenant_deleted")
    assert_problem(
        await api.client.patch(
            f"/v1/tenants/{tenant.id}", json={"status": "active"}, headers=api.operator
        ),
        409,
        "tenant_deleted",
    )
    # Before the grace period ends nothing is destroyed ...
    assert tenant.id not in map(
        str,
        await purge_due_tenants(runtime.control, runtime.registry, runtime.keyring, runtime.system),
    )
    # ... after it, the keys are.
    later = utcnow() + timedelta(seconds=deployment.settings.keys.shred_grace_seconds + 1)
    purged = await purge_due_tenants(
        runtime.control, runtime.registry, runtime.keyring, runtime.system, later
    )
    assert uuid.UUID(tenant.id) in purged

    async with runtime.registry.tenant_transaction(ctx) as session:
        assert await runtime.keyring.for_tenant(session, ctx).keys.count() == 0
    gone = assert_problem(
        await api.client.get(f"/v1/tenants/{tenant.id}", headers=api.operator), 410, "tenant_gone"
    )
    assert gone["purged_at"] is not None
    raw = await raw_database_text(deployment, "eu")
    assert user["email"].encode() not in raw

    # The backup copy of the object and of its wrapped data keys opens no more.
    kms = local_kms(deployment, "eu")
    assert backup_rows
    for version, wrapped, kms_key_id in backup_rows:
        with pytest.raises(KeyAccessDenied):
            await kms.decrypt(KeyRef("local", kms_key_id), wrapped, dek_context(ctx, version))
    assert all(SENTINEL not in f.read_bytes() for f in backup.rglob("*") if f.is_file())


async def test_deleted_tenant_keys_cannot_be_reactivated(api: Api) -> None:
    tenant = await api.new_tenant("us")
    await api.client.delete(f"/v1/tenants/{tenant.id}", headers=api.operator)
    again = await api.client.delete(f"/v1/tenants/{tenant.id}", headers=api.operator)
    assert again.status_code == 202  # idempotent
    gone = assert_problem(
        await api.client.get(f"/v1/tenants/{tenant.id}", headers=api.operator), 410, "tenant_gone"
    )
    assert gone["purge_after"] is not None and gone["purged_at"] is None
    assert_problem(
        await api.client.get("/v1/admin/kms", headers=tenant.admin), 403, "tenant_deleted"
    )
    assert_problem(
        await api.client.delete(f"/v1/tenants/{uuid.uuid4()}", headers=api.operator),
        404,
        "tenant_not_found",
    )
    assert_problem(await api.client.delete(f"/v1/tenants/{tenant.id}", headers=tenant.admin), 403)
