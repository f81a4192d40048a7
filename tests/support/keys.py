"""A tenant's sealed objects, read and written directly through a runtime."""

from __future__ import annotations

from app.runtime import Runtime
from tests.support.tenants import TenantHandle, context_of


async def put_object(runtime: Runtime, tenant: TenantHandle, object_id: str, data: bytes) -> None:
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        await runtime.tenant_objects(session, ctx).put("document", object_id, data)


async def get_object(runtime: Runtime, tenant: TenantHandle, object_id: str) -> bytes:
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        return await runtime.tenant_objects(session, ctx).get("document", object_id)
