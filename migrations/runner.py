"""``bulwark migrate``: the control-plane tree once, the regional tree in every configured region.

Migrations run as the schema owner (``migrate_database_url``). On PostgreSQL the app's own role
(the user of ``database_url``) is then granted row access only: no TRUNCATE, no DDL, not the
owner, so FORCE ROW LEVEL SECURITY binds it; on append-only tables (the audit log) only SELECT and
INSERT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kernel.settings import Settings
from residency.database import ensure_sqlite_directory
from residency.objects import blob_store_for

HERE = Path(__file__).parent
_ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"  # never TRUNCATE, never ownership
# Append-only tables: the app may read and insert, nothing else (a trigger also refuses changes).
_APPEND_ONLY_TABLES = ("audit_events",)


@dataclass(frozen=True, slots=True)
class MigrationTarget:
    name: str
    tree: str
    owner_url: str
    app_url: str


def alembic_config(tree: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE / tree))
    config.attributes["url"] = url
    return config


def targets(settings: Settings) -> list[MigrationTarget]:
    found = [
        MigrationTarget("control", "control", settings.control_owner_url, settings.control_url)
    ]
    for name, region in sorted(settings.regions.items()):
        found.append(
            MigrationTarget(name, "regional", region.owner_database_url, region.database_url)
        )
    return found


def migrate(settings: Settings, revision: str = "head") -> list[str]:
    """Upgrade every database; returns the names migrated (control first)."""
    done = []
    for target in targets(settings):
        ensure_sqlite_directory(target.owner_url)
        command.upgrade(alembic_config(target.tree, target.owner_url), revision)
        asyncio.run(_grant_app_role(target))
        done.append(target.name)
    for region in settings.regions.values():
        asyncio.run(blob_store_for(region).ensure_ready())
    return done


async def _grant_app_role(target: MigrationTarget) -> None:
    owner, app = make_url(target.owner_url), make_url(target.app_url)
    if owner.get_backend_name() != "postgresql" or not app.username:
        return
    if app.username == owner.username:
        raise RuntimeError(
            f"{target.name}: the app connects as the schema owner {app.username!r}; "
            "give it its own role so row-level security applies"
        )
    role = app.username.replace('"', '""')
    engine = create_async_engine(target.owner_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": app.username}
            )
            if not exists:
                raise RuntimeError(f"{target.name}: database role {app.username!r} does not exist")
            await connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
            await connection.execute(
                text(f'GRANT {_ROW_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO "{role}"')
            )
            await connection.execute(
                text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
            )
            for table in _APPEND_ONLY_TABLES:
                if await connection.scalar(
                    text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}
                ):
                    await connection.execute(
                        text(f'REVOKE UPDATE, DELETE ON "{table}" FROM "{role}"')
                    )
            await connection.execute(text(f'REVOKE ALL ON alembic_version FROM "{role}"'))
            await connection.execute(text(f'GRANT SELECT ON alembic_version TO "{role}"'))
    finally:
        await engine.dispose()
