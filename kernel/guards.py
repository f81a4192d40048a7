"""Route guards. They check who may call a route; they never replace data-layer scoping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from kernel.errors import Forbidden
from kernel.tenancy import OperatorPrincipal, Role, TenantContext


class RoleRequired(Forbidden):
    code = "role_required"
    title = "Role required"

    def __init__(self, roles: list[str]) -> None:
        super().__init__(
            f"This action needs one of the roles: {', '.join(roles)}.", required_roles=roles
        )


class OperatorRequired(Forbidden):
    code = "operator_required"
    title = "Operator required"

    def __init__(self) -> None:
        super().__init__("This action is reserved to the platform operator.")


class TenantPrincipalRequired(Forbidden):
    code = "tenant_principal_required"
    title = "Tenant principal required"

    def __init__(self) -> None:
        super().__init__("This action needs a tenant user's credential, not the operator token.")


# Guards are coroutines: Litestar runs a plain function guard in its thread pool, a trip there
# and back on every request for a check of a few attribute reads.
Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> object:
    return connection.scope.get("user")


def _tenant(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantContext:
    principal = _principal(connection)
    if not isinstance(principal, TenantContext) or principal.user_id is None:
        raise TenantPrincipalRequired()
    return principal


async def requires_operator(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    if not isinstance(_principal(connection), OperatorPrincipal):
        raise OperatorRequired()


async def requires_tenant(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    _tenant(connection)


def requires_role(*roles: Role) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not _tenant(connection).has_role(*roles):
            raise RoleRequired([role.value for role in roles])

    return guard
