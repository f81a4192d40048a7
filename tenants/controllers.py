"""Operator API: create, list, read and suspend tenants (control plane only)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from kernel.api import SECURED, Limit, Offset, next_offset, problem_responses
from kernel.guards import requires_operator
from kernel.settings import Settings
from tenants.models import Tenant
from tenants.schemas import TenantCreate, TenantPage, TenantRead, TenantStatus, TenantUpdate
from tenants.services import TenantService


def tenant_read(tenant: Tenant) -> TenantRead:
    return TenantRead(
        deleted_at=tenant.deleted_at,
        purge_after=tenant.purge_after,
        purged_at=tenant.purged_at,
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        region=tenant.region,
        status=TenantStatus(tenant.status),
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
    )


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["operator"]
    security = SECURED
    guards = [requires_operator]
    # ``tenants`` works in the control plane's unit of work (``control_db``).

    @post("/", responses=problem_responses(409, 422), summary="Create a tenant pinned to a region")
    async def create_tenant(
        self, tenants: NamedDependency[TenantService], data: JSONBody[TenantCreate]
    ) -> TenantRead:
        return tenant_read(await tenants.create(data))

    @get("/", responses=problem_responses(), summary="List tenants")
    async def list_tenants(
        self, tenants: NamedDependency[TenantService], limit: Limit = 100, offset: Offset = 0
    ) -> TenantPage:
        rows = await tenants.page(limit=limit, offset=offset)
        return TenantPage(
            items=[tenant_read(t) for t in rows],
            next_offset=next_offset(rows, limit=limit, offset=offset),
        )

    @get("/{tenant_id:uuid}", responses=problem_responses(404, 410), summary="Read a tenant")
    async def get_tenant(
        self, tenants: NamedDependency[TenantService], tenant_id: FromPath[uuid.UUID]
    ) -> TenantRead:
        return tenant_read(await tenants.get_live(tenant_id))

    @patch(
        "/{tenant_id:uuid}",
        responses=problem_responses(404, 409),
        summary="Suspend, reactivate or rename a tenant",
    )
    async def update_tenant(
        self,
        tenants: NamedDependency[TenantService],
        tenant_id: FromPath[uuid.UUID],
        data: JSONBody[TenantUpdate],
    ) -> TenantRead:
        return tenant_read(await tenants.update(tenant_id, data))

    @delete(
        "/{tenant_id:uuid}",
        status_code=202,
        responses=problem_responses(404),
        summary="Delete a tenant: it stops now; its keys are destroyed after the grace period",
    )
    async def delete_tenant(
        self,
        tenants: NamedDependency[TenantService],
        settings: NamedDependency[Settings],
        tenant_id: FromPath[uuid.UUID],
    ) -> TenantRead:
        grace = timedelta(seconds=settings.keys.shred_grace_seconds)
        return tenant_read(await tenants.delete(tenant_id, grace))
