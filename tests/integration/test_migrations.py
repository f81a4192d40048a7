"""The Alembic trees build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kernel.db import ControlBase, RegionalBase
from tests.support.deployments import Deployment


async def _diff(url: str, metadata: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()


async def test_migrations_match_models(deployment: Deployment) -> None:
    settings = deployment.settings
    assert await _diff(settings.control_owner_url, ControlBase.metadata) == []
    for region in settings.regions.values():
        assert await _diff(region.owner_database_url, RegionalBase.metadata) == []
