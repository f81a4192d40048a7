"""PostgreSQL row-level security under the repositories, checked with raw SQL as the app role."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

import app.main  # noqa: F401 - every model registered on the metadata
from kernel.db import RegionalBase
from tests.support.deployments import APP_ROLE, Deployment, raw_pg_dsn
from tests.support.tenants import Api

# Only the PostgreSQL leg of the session-wide ``deployment`` fixture.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("deployment", ["postgres"], indirect=True),
]

# Tables the test fills for tenant A before looking (the rest are checked empty-handed too).
TENANT_TABLES = ("users", "groups", "memberships", "api_keys", "dlp_policies")
# Every regional table with a tenant column, from the ORM metadata: a new one cannot ship
# without row-level security.
TENANT_OWNED = sorted(
    table.name for table in RegionalBase.metadata.tables.values() if "tenant_id" in table.c
)
# Readable under any scope by design: a random epoch per tenant, no tenant data, read by the
# authenticator before a principal exists (r0011); writes are tenant-scoped like the rest.
READABLE_BY_ANY = {"auth_epochs"}


@pytest.fixture
def pg(deployment: Deployment) -> Deployment:
    assert deployment.backend == "postgres"
    return deployment


async def test_rls_hides_other_tenants_and_everything_without_a_tenant(
    pg: Deployment, api: Api
) -> None:
    a = await api.new_tenant("eu")
    b = await api.new_tenant("eu")
    await api.new_user(a)
    group = await api.new_group(a)
    await api.new_key(a, a.admin_id)
    await api.client.put(f"/v1/admin/groups/{group['id']}/members/{a.admin_id}", headers=a.admin)
    dlp = {"entities": [{"type": "PERSON", "inbound": "redact"}]}
    assert (await api.client.put("/v1/admin/dlp", json=dlp, headers=a.admin)).status_code == 200

    conn = await asyncpg.connect(raw_pg_dsn(pg.databases["eu"], APP_ROLE))
    try:
        for table in sorted(set(TENANT_OWNED) - READABLE_BY_ANY):
            # Whatever the table: no tenant set, no row; another tenant set, none of A's.
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
            async with conn.transaction():
                await conn.execute("SELECT set_config('bulwark.tenant_id', $1, true)", b.id)
                assert (
                    await conn.fetchval(
                        f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a.id)
                    )
                    == 0
                ), table
        for table in TENANT_TABLES:
            # No tenant set: nothing at all, not even with an explicit WHERE.
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
            assert (
                await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a.id)
                )
                == 0
            )
            async with conn.transaction():
                await conn.execute("SELECT set_config('bulwark.tenant_id', $1, true)", b.id)
                assert (
                    await conn.fetchval(
                        f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a.id)
                    )
                    == 0
                )
            async with conn.transaction():
                await conn.execute("SELECT set_config('bulwark.tenant_id', $1, true)", a.id)
                assert (
                    await conn.fetchval(
                        f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a.id)
                    )
                    > 0
                )
        # After the transaction-local setting ends, the pooled connection sees '' -> nothing.
        assert await conn.fetchval("SELECT count(*) FROM users") == 0

        # Writing a row for another tenant is refused by the policy's WITH CHECK.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SELECT set_config('bulwark.tenant_id', $1, true)", b.id)
                await conn.execute(
                    "INSERT INTO groups (id, tenant_id, name) VALUES ($1, $2, 'planted')",
                    uuid.uuid4(),
                    uuid.UUID(a.id),
                )
    finally:
        await conn.close()


async def test_app_role_is_not_owner_and_rls_is_forced(pg: Deployment) -> None:
    conn = await asyncpg.connect(raw_pg_dsn(pg.databases["eu"]))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
            "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'",
            TENANT_OWNED,
        )
        assert len(TENANT_OWNED) > 30
        assert {r["relname"] for r in rows} == set(TENANT_OWNED)
        for row in rows:
            assert row["relrowsecurity"] and row["relforcerowsecurity"], row["relname"]
            assert row["owner"] != APP_ROLE
        assert not await conn.fetchval(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", APP_ROLE
        )
    finally:
        await conn.close()
    app_conn = await asyncpg.connect(raw_pg_dsn(pg.databases["eu"], APP_ROLE))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.execute("TRUNCATE users")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    finally:
        await app_conn.close()
