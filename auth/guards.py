"""Route guards. They check who may call a route; they never replace data-layer scoping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from auth.context import OperatorPrincipal, Role, TenantContext
from auth.errors import OperatorRequired, RoleRequired, TenantPrincipalRequired

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def requires_operator(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not isinstance(connection.user, OperatorPrincipal):
        raise OperatorRequired()


def requires_tenant(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not isinstance(connection.user, TenantContext) or connection.user.user_id is None:
        raise TenantPrincipalRequired()


def requires_role(*roles: Role) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        requires_tenant(connection, handler)
        if not connection.user.has_role(*roles):
            raise RoleRequired([role.value for role in roles])

    return guard
