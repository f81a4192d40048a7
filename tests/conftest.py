"""Test deployments on both databases.

Each backend gets one deployment per test session, migrated by the real ``bulwark migrate`` code
(never ``create_all``): SQLite files in a temporary data dir, or three fresh PostgreSQL databases
(control, eu, us) owned by the DSN's user, with the app connecting as ``bulwark_app`` so that
FORCE ROW LEVEL SECURITY applies. Tests isolate themselves by creating their own tenants.

PostgreSQL tests are skipped without ``BULWARK_TEST_POSTGRES_DSN``; ``.ci/run`` sets it and sets
``BULWARK_TEST_REQUIRE_POSTGRES=1`` so a missing server fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from app.main import create_app
from app.runtime import Runtime
from auth.context import system_context
from kernel.settings import Settings, embedded_region
from kernel.tenancy import TenantContext, TenantRoute
from migrations.runner import migrate

PG_DSN = os.environ.get("BULWARK_TEST_POSTGRES_DSN")
REQUIRE_PG = os.environ.get("BULWARK_TEST_REQUIRE_POSTGRES") == "1"
APP_ROLE = "bulwark_app"
OPERATOR_TOKEN = "operator-" + secrets.token_urlsafe(16)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def require_postgres() -> str:
    if not PG_DSN:
        if REQUIRE_PG:
            pytest.fail("BULWARK_TEST_REQUIRE_POSTGRES=1 but BULWARK_TEST_POSTGRES_DSN is unset")
        pytest.skip("BULWARK_TEST_POSTGRES_DSN not set")
    return PG_DSN


def pg_url(database: str, user: str | None = None) -> str:
    assert PG_DSN
    url = make_url(PG_DSN).set(drivername="postgresql+asyncpg", database=database)
    if user:
        url = url.set(username=user, password=None)
    return url.render_as_string(hide_password=False)


def raw_pg_dsn(database: str, user: str | None = None) -> str:
    return pg_url(database, user).replace("postgresql+asyncpg://", "postgresql://")


async def _admin_connection() -> asyncpg.Connection:
    return await asyncpg.connect(raw_pg_dsn(make_url(PG_DSN).database or "postgres"))


@dataclass
class Deployment:
    backend: str
    settings: Settings
    databases: dict[str, str] = field(default_factory=dict)  # name -> PostgreSQL database


def base_settings(data_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "data_dir": data_dir,
        "environment": "test",
        "security": {"operator_token": OPERATOR_TOKEN, "secret_key": "test-pepper-" + "x" * 20},
        # No sampled LLM-as-judge calls unless a test asks (they would reach the test models).
        # Raw-content debug logging is allowed here so tests can show its switch works.
        "observability": {
            "log_json": True,
            "log_level": "INFO",
            "judge_sample_rate": 0.0,
            "allow_raw_content_debug": True,
        },
        # A short DEK cache so revocation tests see the KMS refuse within a second.
        "keys": {"dek_cache_ttl_seconds": 1.0},
        "identity": {"jwks_min_refresh_seconds": 0.0},
        # The operator's egress allow-list: the suite's own model servers run on loopback,
        # over plain http. Nothing else private is allowed (tests/integration/gateway).
        "egress": {"allow_networks": ["127.0.0.0/8"], "allow_http": True},
        **overrides,
    }


async def make_deployment(backend: str, data_dir: Path) -> Deployment:
    if backend == "sqlite":
        settings = Settings(**base_settings(data_dir))
        await asyncio.to_thread(migrate, settings)
        return Deployment("sqlite", settings)
    require_postgres()
    prefix = f"bwt_{uuid.uuid4().hex[:8]}"
    databases = {name: f"{prefix}_{name}" for name in ("control", "eu", "us")}
    admin = await _admin_connection()
    try:
        await admin.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
            f"THEN CREATE ROLE {APP_ROLE} LOGIN; END IF; END $$"
        )
        for database in databases.values():
            await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    regions = {}
    for name in ("eu", "us"):
        region = embedded_region(data_dir, name)
        region["database_url"] = pg_url(databases[name], APP_ROLE)
        region["migrate_database_url"] = pg_url(databases[name])
        regions[name] = region
    settings = Settings(
        **base_settings(
            data_dir,
            regions=regions,
            database={
                "control_url": pg_url(databases["control"], APP_ROLE),
                "control_migrate_url": pg_url(databases["control"]),
            },
        )
    )
    await asyncio.to_thread(migrate, settings)
    return Deployment("postgres", settings, databases)


async def drop_deployment(deployment: Deployment) -> None:
    if not deployment.databases:
        return
    admin = await _admin_connection()
    try:
        for database in deployment.databases.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session", params=BACKENDS)
async def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    created = await make_deployment(request.param, tmp_path_factory.mktemp(request.param))
    yield created
    await drop_deployment(created)


@pytest.fixture(scope="session")
async def app(deployment: Deployment) -> Litestar:
    return create_app(deployment.settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        test_client.follow_redirects = False  # redirects (SSO) are asserted, never followed
        yield test_client


@dataclass
class TenantHandle:
    id: str
    slug: str
    region: str
    admin_key: str
    admin_id: str

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.admin_key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """Small helpers over the HTTP API, as a client would use it."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.operator = bearer(OPERATOR_TOKEN)

    async def new_tenant(self, region: str = "eu") -> TenantHandle:
        slug = f"t-{uuid.uuid4().hex[:12]}"
        created = await self.client.post(
            "/v1/tenants",
            json={"slug": slug, "name": f"Tenant {slug}", "region": region},
            headers=self.operator,
        )
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        boot = await self.client.post(
            f"/v1/tenants/{tenant_id}/admins",
            json={"email": f"admin@{slug}.example", "display_name": "Admin"},
            headers=self.operator,
        )
        assert boot.status_code == 201, boot.text
        body = boot.json()
        return TenantHandle(tenant_id, slug, region, body["api_key"]["key"], body["user"]["id"])

    async def new_user(
        self, tenant: TenantHandle, roles: list[str] | None = None, email: str | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/users",
            json={
                "email": email or f"u-{uuid.uuid4().hex[:8]}@{tenant.slug}.example",
                "display_name": "User",
                "roles": roles or ["member"],
            },
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def new_group(self, tenant: TenantHandle, name: str | None = None) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/groups",
            json={"name": name or f"g-{uuid.uuid4().hex[:8]}"},
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def new_key(self, tenant: TenantHandle, user_id: str) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/api-keys", json={"user_id": user_id, "name": "k"}, headers=tenant.admin
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def api(client: AsyncTestClient[Litestar]) -> Api:
    return Api(client)


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BULWARK_") and not key.startswith("BULWARK_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
async def runtime(deployment: Deployment) -> AsyncIterator[Runtime]:
    """A second runtime over the same stores, for direct service-level work in a test.

    (The app under the test client serves from its own event loop; its pooled PostgreSQL
    connections cannot be used from the test's loop.)
    """
    direct = Runtime.build(deployment.settings)
    yield direct
    await direct.dispose()


def context_of(tenant: TenantHandle) -> TenantContext:
    """A system context for a test tenant, built the only way there is: through ``auth``."""
    return system_context(TenantRoute(uuid.UUID(tenant.id), tenant.slug, tenant.region, "active"))
