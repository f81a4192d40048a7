"""Route guards. They check who may call a route; they never replace data-layer scoping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from auth.context import OperatorPrincipal, Role, TenantContext
from auth.errors import OperatorRequired, RoleRequired, TenantPrincipalRequired

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> object:
    return connection.scope.get("user")


def requires_operator(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not isinstance(_principal(connection), OperatorPrincipal):
        raise OperatorRequired()


def requires_tenant(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal = _principal(connection)
    if not isinstance(principal, TenantContext) or principal.user_id is None:
        raise TenantPrincipalRequired()


def requires_role(*roles: Role) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        requires_tenant(connection, handler)
        principal = _principal(connection)
        if not isinstance(principal, TenantContext) or not principal.has_role(*roles):
            raise RoleRequired([role.value for role in roles])

    return guard
