"""Residency: each region's raw stores hold nothing of another region's tenants, and a tenant
pinned to a region this deployment does not configure fails closed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.runtime import Runtime
from kernel.settings import Settings
from migrations.runner import migrate
from tests.support.deployments import base_settings
from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle, context_of


def raw_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def fingerprints(tenant: TenantHandle, secret: bytes, email: str) -> list[bytes]:
    tenant_id = uuid.UUID(tenant.id)
    return [
        tenant.id.encode(),
        tenant_id.hex.encode(),
        tenant_id.bytes,
        secret,
        email.encode(),
        tenant.slug.encode(),
    ]


async def test_each_regions_raw_stores_hold_only_its_own_tenants(tmp_path: Path) -> None:
    settings = Settings(**base_settings(tmp_path))
    await asyncio.to_thread(migrate, settings)
    written: dict[str, tuple[TenantHandle, bytes, str]] = {}
    async with AsyncTestClient(app=create_app(settings)) as client:
        api = Api(client)
        for region in ("eu", "us"):
            tenant = await api.new_tenant(region)
            user = await api.new_user(tenant, email=f"person-{region}@{tenant.slug}.example")
            group = await api.new_group(tenant)
            await client.put(
                f"/v1/admin/groups/{group['id']}/members/{user['id']}", headers=tenant.admin
            )
            await api.new_key(tenant, user["id"])
            await client.post("/v1/admin/kms/rotate", headers=tenant.admin)
            written[region] = (
                tenant,
                f"SENTINEL-{region}-{uuid.uuid4().hex}".encode(),
                user["email"],
            )
    runtime = Runtime.build(settings)
    try:
        for tenant, secret, _ in written.values():
            ctx = context_of(tenant)
            async with runtime.registry.tenant_transaction(ctx) as session:
                await runtime.tenant_objects(session, ctx).put("document", "d1", secret)
    finally:
        await runtime.dispose()

    for region, other in (("eu", "us"), ("us", "eu")):
        stores = raw_bytes(tmp_path / "regions" / region)  # database, WAL, objects, key file
        own_tenant, own_secret, _ = written[region]
        assert own_tenant.id.encode() in stores or uuid.UUID(own_tenant.id).hex.encode() in stores
        assert own_secret not in stores  # sealed
        for mark in fingerprints(*written[other]):
            assert mark not in stores, (region, mark)


async def test_a_tenant_in_an_unconfigured_region_fails_closed(tmp_path: Path) -> None:
    three = Settings(
        **base_settings(
            tmp_path,
            regions={
                name: {
                    "database_url": f"sqlite+aiosqlite:///{tmp_path / name / 'db.sqlite'}",
                    "vector_store": str(tmp_path / name / "vectors"),
                    "object_store": str(tmp_path / name / "objects"),
                    "kms": {"provider": "local", "key_file": str(tmp_path / name / "kms.key")},
                }
                for name in ("eu", "us", "ap")
            },
        )
    )
    await asyncio.to_thread(migrate, three)
    async with AsyncTestClient(app=create_app(three)) as client:
        tenant = await Api(client).new_tenant("ap")

    # The deployment drops region "ap": nothing may fall back to another region.
    two = Settings(
        **base_settings(
            tmp_path,
            regions={
                name: region.model_dump() for name, region in three.regions.items() if name != "ap"
            },
        )
    )
    async with AsyncTestClient(app=create_app(two)) as client:
        body = assert_problem(
            await client.get("/v1/me", headers=tenant.admin), 503, "region_unavailable"
        )
        assert body["region"] == "ap"
        api = Api(client)
        read = await client.get(f"/v1/tenants/{tenant.id}", headers=api.operator)
        assert read.json()["region"] == "ap"  # the pin is kept, not rewritten
        assert_problem(
            await client.post(
                "/v1/tenants",
                json={"slug": "ap-two", "name": "AP", "region": "ap"},
                headers=api.operator,
            ),
            422,
            "unknown_region",
        )
