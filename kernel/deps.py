"""Request-scoped dependencies every layer may name: the caller's tenant principal.

The composition root registers it on the app as ``ctx`` (``app.dependencies``); a route family
that authenticates its callers another way (SCIM tokens) provides its own ``ctx``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from kernel.guards import TenantPrincipalRequired
from kernel.tenancy import TenantContext


def provide_tenant_context(request: Request[Any, Any, Any]) -> TenantContext:
    """The principal the bearer middleware authenticated (the operator token is not one: 403)."""
    user = request.scope.get("user")
    if not isinstance(user, TenantContext):
        raise TenantPrincipalRequired()
    return user
