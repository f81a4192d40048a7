"""Request-scoped dependencies: the principal, and the unit of work it runs in.

The unit of work is a yield dependency: Litestar runs the handler inside it, throws any error
into it (rollback) and otherwise lets it commit before the response leaves, so a commit failure
still becomes an error response rather than a false success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.runtime import Runtime
from kernel.guards import TenantPrincipalRequired
from kernel.tenancy import TenantContext


def get_runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def provide_tenant_context(request: Request[Any, Any, Any]) -> TenantContext:
    user = request.scope.get("user")
    if not isinstance(user, TenantContext):
        raise TenantPrincipalRequired()
    return user


async def provide_tenant_session(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> AsyncIterator[AsyncSession]:
    """The tenant's unit of work, opened only while the tenant's key works (fail closed)."""
    runtime = get_runtime(request)
    read_only = request.method in ("GET", "HEAD")
    async with runtime.registry.tenant_transaction(ctx, read_only=read_only) as session:
        await runtime.keyring.for_tenant(session, ctx).require_usable()
        yield session


async def provide_key_admin_session(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> AsyncIterator[AsyncSession]:
    """The tenant's unit of work without the key gate (KMS administration only)."""
    async with get_runtime(request).registry.tenant_transaction(ctx) as session:
        yield session


async def provide_control_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    async with get_runtime(request).control.transaction(None) as session:
        yield session


TENANT_DEPENDENCIES = {
    "ctx": Provide(provide_tenant_context, sync_to_thread=False),
    "db": Provide(provide_tenant_session),
}
KEY_ADMIN_DEPENDENCIES = {
    "ctx": Provide(provide_tenant_context, sync_to_thread=False),
    "db": Provide(provide_key_admin_session),
}
CONTROL_DEPENDENCIES = {"control_db": Provide(provide_control_session)}
