"""Tenant lifecycle for the platform operator. Never commits: the request's unit of work does.

Each change is also recorded in the tenant's own audit chain, which lives in the tenant's region
(the control plane holds no audit log): see ``TenantService._record``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from audit.schemas import AuditAction, ResourceType
from audit.services import AuditOrigin
from auth.context import TenantRoute, system_context
from residency.registry import RegionRegistry
from tenants.errors import TenantNotFound, TenantSlugTaken
from tenants.models import Tenant
from tenants.repositories import TenantRepository
from tenants.schemas import TenantCreate, TenantStatus, TenantUpdate


class TenantService:
    def __init__(
        self, repository: TenantRepository, registry: RegionRegistry, origin: AuditOrigin
    ) -> None:
        self.repository = repository
        self.registry = registry
        self.origin = origin

    async def _record(self, tenant: Tenant, action: AuditAction, detail: dict[str, Any]) -> None:
        """Append an operator action to the tenant's chain in the tenant's region.

        This is a separate transaction from the control-plane unit of work, and it commits first:
        if the control-plane commit then fails, the region log holds an event for a change that
        did not happen. The reverse — a committed change with no event — cannot happen, because a
        failure here raises before the control plane commits. We accept that trade-off rather
        than a two-phase commit across the control plane and a region.
        """
        ctx = system_context(TenantRoute(tenant.id, tenant.slug, tenant.region, tenant.status))
        async with self.registry.tenant_transaction(ctx) as session:
            await self.origin.log(session, ctx).record(
                action, resource_type=ResourceType.TENANT, resource_id=tenant.id, detail=detail
            )

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
                await self.repository.add(tenant)
        except IntegrityError:
            # Lost a race with a concurrent create of the same slug.
            raise TenantSlugTaken(data.slug) from None
        await self._record(tenant, AuditAction.TENANT_CREATED, {"region": region})
        return tenant

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
        changed: list[str] = []
        if data.status is not None and data.status.value != tenant.status:
            tenant.status = data.status.value
            changed.append("status")
        if data.name is not None and data.name != tenant.name:
            tenant.name = data.name
            changed.append("name")  # that it changed, never the name itself
        await self.repository.session.flush()
        if changed:
            await self._record(
                tenant, AuditAction.TENANT_UPDATED, {"changed": changed, "status": tenant.status}
            )
        return tenant
