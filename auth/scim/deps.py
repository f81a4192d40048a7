"""Request-scoped dependencies of the SCIM routes: the IdP's context (from its SCIM token, not
the bearer middleware) and the audit log acting as ``scim``. They replace the app's ``ctx`` and
``audit`` on these routes, so the tenant's unit of work (``db``, key-gated) and the SCIM services
the composition root provides (``scim_users``, ``scim_groups``) are the IdP's."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from audit.pseudonyms import SCIM_SUBJECT
from audit.services import AuditLog
from auth.scim.authentication import ScimAuthenticator
from auth.scim.services import ScimGroupService, ScimSearchService, ScimUserService
from auth.services import AuthenticationService
from kernel.observability import ensure_request_id
from kernel.settings import Settings
from kernel.tenancy import TenantContext


async def provide_scim_context(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    authenticator: NamedDependency[AuthenticationService],
) -> TenantContext:
    ctx = await ScimAuthenticator(authenticator).authenticate(
        request.headers.get("authorization"), tenant
    )
    structlog.contextvars.bind_contextvars(tenant_id=str(ctx.tenant_id), principal="scim")
    return ctx


def scim_base_url(settings: Settings, ctx: TenantContext) -> str:
    """The tenant's SCIM base URL, under the deployment's public URL (meta.location, $ref).

    (A plain function, not a dependency: Litestar resolves the dependencies of one level
    concurrently, and the unit of work must be entered alone, in the request's own context.)
    """
    public_url = settings.identity.public_url.rstrip("/")
    return f"{public_url}/scim/v2/{ctx.tenant_slug}"


def provide_scim_audit(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> AuditLog:
    return AuditLog(db, ctx, subject=SCIM_SUBJECT, request_id=ensure_request_id(request.scope))


def provide_scim_search(
    scim_users: NamedDependency[ScimUserService], scim_groups: NamedDependency[ScimGroupService]
) -> ScimSearchService:
    return ScimSearchService(scim_users, scim_groups)


SCIM_DEPENDENCIES = {
    "ctx": Provide(provide_scim_context),
    "audit": Provide(provide_scim_audit, sync_to_thread=False),
    "search": Provide(provide_scim_search, sync_to_thread=False),
}
