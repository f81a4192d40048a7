"""The region registry: the one place that turns a tenant into its region's resources.

Every call site that touches tenant data asks the registry with a ``TenantContext`` (or, for the
few pre-authentication lookups in ``auth/``, a region name read from the control plane). There is
no default region and no fallback: an unknown region raises ``RegionUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.settings import KmsSettings, ModelEndpointSettings, RegionSettings, Settings
from residency.database import Database
from residency.errors import RegionUnavailable, UnknownRegion
from residency.objects import BlobStore, blob_store_for

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext


@dataclass(frozen=True, slots=True)
class RegionDataPlane:
    """Everything one region holds. Resolved per tenant; never shared across regions."""

    name: str
    database: Database
    vector_store: str
    objects: BlobStore
    kms: KmsSettings
    models: tuple[ModelEndpointSettings, ...]


class RegionRegistry:
    def __init__(
        self, regions: dict[str, RegionSettings], *, pool_size: int = 10, echo: bool = False
    ) -> None:
        self._planes: dict[str, RegionDataPlane] = {
            name: RegionDataPlane(
                name=name,
                database=Database(name, cfg.database_url, pool_size=pool_size, echo=echo),
                vector_store=cfg.vector_store,
                objects=blob_store_for(cfg),
                kms=cfg.kms,
                models=cfg.models,
            )
            for name, cfg in regions.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> RegionRegistry:
        return cls(
            settings.regions, pool_size=settings.database.pool_size, echo=settings.database.echo
        )

    @property
    def names(self) -> list[str]:
        return sorted(self._planes)

    def validate_new_region(self, region: str) -> str:
        """For input: a region a new tenant may be pinned to (422 when unknown)."""
        if region not in self._planes:
            raise UnknownRegion(region, self.names)
        return region

    def region(self, name: str) -> RegionDataPlane:
        try:
            return self._planes[name]
        except KeyError:
            raise RegionUnavailable(name) from None

    def for_tenant(self, ctx: TenantContext) -> RegionDataPlane:
        return self.region(ctx.region)

    def vector_store_for(self, ctx: TenantContext) -> str:
        plane = self.for_tenant(ctx)
        if not plane.vector_store:
            raise RegionUnavailable(plane.name, "has no vector store configured")
        return plane.vector_store

    def model_endpoints_for(
        self, ctx: TenantContext, tier: str | None = None
    ) -> tuple[ModelEndpointSettings, ...]:
        """The region's own model endpoints (optionally of one tier); never another region's."""
        plane = self.for_tenant(ctx)
        endpoints = tuple(m for m in plane.models if tier is None or m.tier == tier)
        if not endpoints:
            what = f"{tier} model endpoints" if tier else "model endpoints"
            raise RegionUnavailable(plane.name, f"has no {what} configured")
        return endpoints

    @asynccontextmanager
    async def tenant_transaction(
        self, ctx: TenantContext, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """The tenant's unit of work in its own region's database, RLS-scoped to the tenant."""
        database = self.for_tenant(ctx).database
        async with database.transaction(ctx.tenant_id, read_only=read_only) as session:
            yield session

    def planes(self) -> list[RegionDataPlane]:
        return [self._planes[name] for name in self.names]

    async def dispose(self) -> None:
        for plane in self._planes.values():
            await plane.database.dispose()
