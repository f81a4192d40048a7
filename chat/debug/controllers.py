"""``/v1/admin/debug/raw-content``: the tenant's break-glass switch for raw-content logs."""

from __future__ import annotations

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from chat.debug.schemas import RawContentSwitchBody, RawContentSwitchOut
from chat.debug.services import DebugSwitchService
from kernel.api import SECURED, problem_responses
from kernel.guards import requires_role, requires_tenant
from kernel.tenancy import Role


class DebugSwitchController(Controller):
    path = "/v1/admin/debug/raw-content"
    tags = ["observability", "admin"]
    security = SECURED
    guards = [requires_tenant, requires_role(Role.TENANT_ADMIN)]

    @get("/", responses=problem_responses(), summary="Whether raw-content logging is on, until")
    async def get_switch(
        self, debug_switch: NamedDependency[DebugSwitchService]
    ) -> RawContentSwitchOut:
        return await debug_switch.current()

    @put(
        "/",
        responses=problem_responses(409, 422),
        summary="Log this tenant's raw prompts and answers for a bounded time (audited)",
    )
    async def enable(
        self,
        debug_switch: NamedDependency[DebugSwitchService],
        data: JSONBody[RawContentSwitchBody],
    ) -> RawContentSwitchOut:
        return await debug_switch.enable(data)

    @delete(
        "/",
        status_code=200,
        responses=problem_responses(),
        summary="Turn raw-content logging off now (audited)",
    )
    async def disable(
        self, debug_switch: NamedDependency[DebugSwitchService]
    ) -> RawContentSwitchOut:
        return await debug_switch.disable()
