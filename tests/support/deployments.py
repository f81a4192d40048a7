"""Test deployments on both databases, migrated by the real ``bulwark migrate`` code: SQLite files
in a temporary data dir, or three fresh PostgreSQL databases (control, eu, us) owned by the DSN's
user, with the app connecting as ``bulwark_app``. The fixtures are in ``tests/conftest.py``."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from kernel.settings import Settings, embedded_region
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
