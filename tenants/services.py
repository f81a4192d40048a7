"""Tenant lifecycle for the platform operator. Never commits: the request's unit of work does.

Each change is also recorded in the tenant's own audit chain, which lives in the tenant's region
(the control plane holds no audit log): see ``TenantService._record``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from audit.services import AuditOrigin
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.tenancy import SystemAuthority, TenantRoute
from keys.services import Keyring
from residency.registry import RegionRegistry
from tenants.errors import TenantAlreadyDeleted, TenantGone, TenantNotFound, TenantSlugTaken
from tenants.models import Tenant
from tenants.repositories import TenantRepository
from tenants.schemas import TenantCreate, TenantStatus, TenantUpdate


class TenantService:
    def __init__(
        self,
        repository: TenantRepository,
        registry: RegionRegistry,
        keyring: Keyring,
        origin: AuditOrigin,
        system: SystemAuthority,
    ) -> None:
        self.repository = repository
        self.registry = registry
        self.keyring = keyring
        self.origin = origin
        self.system = system

    async def _record(
        self,
        tenant: Tenant,
        action: AuditAction,
        detail: dict[str, Any],
        *,
        provision: bool = False,
    ) -> None:
        """Append an operator action to the tenant's chain in the tenant's region (and, for a new
        tenant, create its KMS key and first data key there in the same transaction).

        This is a separate transaction from the control-plane unit of work, and it commits first:
        if the control-plane commit then fails, the region holds an event (and an unused key) for
        a change that did not happen. The reverse — a committed change with no event or a tenant
        without keys — cannot happen, because a failure here raises before the control plane
        commits. We accept that trade-off rather than a two-phase commit across the control plane
        and a region.
        """
        ctx = self.system.context(TenantRoute.of(tenant))
        async with self.registry.tenant_transaction(ctx) as session:
            if provision:
                await self.keyring.for_tenant(session, ctx).provision()
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
        await self._record(tenant, AuditAction.TENANT_CREATED, {"region": region}, provision=True)
        return tenant

    async def page(self, *, limit: int, offset: int) -> Sequence[Tenant]:
        return await self.repository.page(limit=limit, offset=offset)

    async def get(self, tenant_id: uuid.UUID) -> Tenant:
        tenant = await self.repository.get(tenant_id)
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def get_live(self, tenant_id: uuid.UUID) -> Tenant:
        """A tenant that is not deleted: a deleted one answers 410 with its purge schedule."""
        tenant = await self.get(tenant_id)
        if tenant.deleted_at is not None:
            raise TenantGone(
                deleted_at=tenant.deleted_at.isoformat(),
                purge_after=tenant.purge_after.isoformat() if tenant.purge_after else None,
                purged_at=tenant.purged_at.isoformat() if tenant.purged_at else None,
            )
        return tenant

    async def get_by_slug(self, slug: str) -> Tenant:
        tenant = await self.repository.get_by_slug(slug)
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def update(self, tenant_id: uuid.UUID, data: TenantUpdate) -> Tenant:
        tenant = await self.get(tenant_id)
        if tenant.deleted_at is not None:
            raise TenantAlreadyDeleted()
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

    async def delete(self, tenant_id: uuid.UUID, grace: timedelta) -> Tenant:
        """Schedule deletion: the tenant stops at once; its keys are shredded after ``grace``.

        Idempotent: deleting a deleted tenant keeps the original schedule.
        """
        tenant = await self.get(tenant_id)
        if tenant.deleted_at is None:
            now = utcnow()
            tenant.deleted_at, tenant.purge_after = now, now + grace
            tenant.status = TenantStatus.SUSPENDED.value
            await self.repository.session.flush()
            await self._record(
                tenant, AuditAction.TENANT_DELETED, {"grace_seconds": int(grace.total_seconds())}
            )
        return tenant
