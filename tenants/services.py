"""Tenant lifecycle for the platform operator. Never commits: the request's unit of work does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from residency.registry import RegionRegistry
from tenants.errors import TenantNotFound, TenantSlugTaken
from tenants.models import Tenant
from tenants.repositories import TenantRepository
from tenants.schemas import TenantCreate, TenantStatus, TenantUpdate


class TenantService:
    def __init__(self, repository: TenantRepository, registry: RegionRegistry) -> None:
        self.repository = repository
        self.registry = registry

    async def create(self, data: TenantCreate) -> Tenant:
        region = self.registry.validate_new_region(data.region)
        if await self.repository.get_by_slug(data.slug) is not None:
            raise TenantSlugTaken(data.slug)
        tenant = Tenant(
            id=uuid.uuid4(),
            slug=data.slug,
            name=data.name,
            region=region,
            status=TenantStatus.ACTIVE.value,
        )
        try:
            async with self.repository.session.begin_nested():
                return await self.repository.add(tenant)
        except IntegrityError:
            # Lost a race with a concurrent create of the same slug.
            raise TenantSlugTaken(data.slug) from None

    async def page(self, *, limit: int, offset: int) -> Sequence[Tenant]:
        return await self.repository.page(limit=limit, offset=offset)

    async def get(self, tenant_id: uuid.UUID) -> Tenant:
        tenant = await self.repository.get(tenant_id)
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def get_by_slug(self, slug: str) -> Tenant:
        tenant = await self.repository.get_by_slug(slug)
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def update(self, tenant_id: uuid.UUID, data: TenantUpdate) -> Tenant:
        tenant = await self.get(tenant_id)
        if data.status is not None:
            tenant.status = data.status.value
        if data.name is not None:
            tenant.name = data.name
        await self.repository.session.flush()
        return tenant
