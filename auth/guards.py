"""Route guards. They check who may call a route; they never replace data-layer scoping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from auth.context import OperatorPrincipal, Role, TenantContext
from auth.errors import OperatorRequired, RoleRequired, TenantPrincipalRequired

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
