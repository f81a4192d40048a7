"""``/v1/admin/debug/raw-content``: the tenant's break-glass switch for raw-content logs."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import TENANT_DEPENDENCIES, get_runtime
from audit.deps import AUDIT_DEPENDENCIES
from audit.services import AuditLog
from chat.debug.schemas import RawContentSwitchBody, RawContentSwitchOut
from chat.debug.services import DebugSwitchService
from kernel.api import SECURED, problem_responses
from kernel.guards import requires_role, requires_tenant
from kernel.tenancy import Role, TenantContext


def provide_debug_switch(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> DebugSwitchService:
    runtime = get_runtime(request)
    return DebugSwitchService(
        db,
        ctx,
        audit,
        allowed=runtime.settings.observability.allow_raw_content_debug,
        pepper=runtime.pepper.encode(),
    )


class DebugSwitchController(Controller):
    path = "/v1/admin/debug/raw-content"
    tags = ["observability", "admin"]
    security = SECURED
    guards = [requires_tenant, requires_role(Role.TENANT_ADMIN)]
    dependencies = {
        **TENANT_DEPENDENCIES,
        **AUDIT_DEPENDENCIES,
        "switch": Provide(provide_debug_switch, sync_to_thread=False),
    }

    @get("/", responses=problem_responses(), summary="Whether raw-content logging is on, until")
    async def get_switch(self, switch: NamedDependency[DebugSwitchService]) -> RawContentSwitchOut:
        return await switch.current()

    @put(
        "/",
        responses=problem_responses(409, 422),
        summary="Log this tenant's raw prompts and answers for a bounded time (audited)",
    )
    async def enable(
        self, switch: NamedDependency[DebugSwitchService], data: JSONBody[RawContentSwitchBody]
    ) -> RawContentSwitchOut:
        return await switch.enable(data)

    @delete(
        "/",
        status_code=200,
        responses=problem_responses(),
        summary="Turn raw-content logging off now (audited)",
    )
    async def disable(self, switch: NamedDependency[DebugSwitchService]) -> RawContentSwitchOut:
        return await switch.disable()
