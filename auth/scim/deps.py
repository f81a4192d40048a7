"""Request-scoped dependencies of the SCIM routes: the IdP's context (from its SCIM token, not
the bearer middleware), the tenant's unit of work (key-gated), the audit log acting as ``scim``
and the services."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import get_runtime, provide_tenant_session
from audit.pseudonyms import SCIM_SUBJECT
from audit.services import AuditLog
from auth.scim.authentication import ScimAuthenticator
from auth.scim.services import ScimGroupService, ScimSearchService, ScimUserService
from kernel.observability import ensure_request_id
from kernel.tenancy import TenantContext


async def provide_scim_context(
    request: Request[Any, Any, Any], tenant: FromPath[str]
) -> TenantContext:
    runtime = get_runtime(request)
    ctx = await ScimAuthenticator(runtime.authenticator).authenticate(
        request.headers.get("authorization"), tenant
    )
    structlog.contextvars.bind_contextvars(tenant_id=str(ctx.tenant_id), principal="scim")
    return ctx


def scim_base_url(request: Request[Any, Any, Any], ctx: TenantContext) -> str:
    """The tenant's SCIM base URL, under the deployment's public URL (meta.location, $ref).

    (A plain function, not a dependency: Litestar resolves the dependencies of one level
    concurrently, and the unit of work must be entered alone, in the request's own context.)
    """
    public_url = get_runtime(request).settings.identity.public_url.rstrip("/")
    return f"{public_url}/scim/v2/{ctx.tenant_slug}"


def provide_scim_audit(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> AuditLog:
    return AuditLog(db, ctx, subject=SCIM_SUBJECT, request_id=ensure_request_id(request.scope))


def provide_scim_users(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ScimUserService:
    return ScimUserService(db, ctx, audit, scim_base_url(request, ctx))


def provide_scim_groups(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ScimGroupService:
    return ScimGroupService(db, ctx, audit, scim_base_url(request, ctx))


def provide_scim_search(
    users: NamedDependency[ScimUserService], groups: NamedDependency[ScimGroupService]
) -> ScimSearchService:
    return ScimSearchService(users, groups)


SCIM_DEPENDENCIES = {
    "ctx": Provide(provide_scim_context),
    "db": Provide(provide_tenant_session),
    "audit": Provide(provide_scim_audit, sync_to_thread=False),
    "users": Provide(provide_scim_users, sync_to_thread=False),
    "groups": Provide(provide_scim_groups, sync_to_thread=False),
    "search": Provide(provide_scim_search, sync_to_thread=False),
}
