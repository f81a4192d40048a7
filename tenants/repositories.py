"""Control-plane repository. Operator-scoped: tenants are the one table without a tenant filter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import Tenant

# What authentication needs of a tenant, in one read: id, slug, region, status, deletion.
# Built once; parameter ``tenant_id``.
ROUTE_QUERY: Select[uuid.UUID, str, str, str, datetime | None] = select(
    Tenant.id, Tenant.slug, Tenant.region, Tenant.status, Tenant.deleted_at
).where(Tenant.id == bindparam("tenant_id"))


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def get_by_slug(self, slug: str) -> Tenant | None:
        result = await self.session.execute(select(Tenant).where(Tenant.slug == slug))
        return result.scalar_one_or_none()

    async def page(self, *, limit: int, offset: int) -> Sequence[Tenant]:
        result = await self.session.execute(
            select(Tenant).order_by(Tenant.created_at, Tenant.id).limit(limit).offset(offset)
        )
        return result.scalars().all()

    async def add(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        await self.session.flush()
        return tenant

    async def active(self) -> Sequence[Tenant]:
        """Tenants that are neither deleted nor purged (retention sweeps, housekeeping)."""
        result = await self.session.execute(
            select(Tenant).where(Tenant.deleted_at.is_(None)).order_by(Tenant.created_at)
        )
        return result.scalars().all()

    async def due_for_purge(self, now: datetime) -> Sequence[Tenant]:
        result = await self.session.execute(
            select(Tenant).where(
                Tenant.deleted_at.is_not(None),
                Tenant.purged_at.is_(None),
                Tenant.purge_after <= now,
            )
        )
        return result.scalars().all()
