"""Who is at the console: the Bulwark session cookie, checked against the tenant in the path.

The console authenticates only the ``bulwark_session`` cookie that an OIDC or SAML sign-in set
(HttpOnly, SameSite=Lax, Secure unless ``identity.cookie_secure`` is off); an API key or the
operator token in that cookie is refused. A session of another tenant than the one the path names
gets the same 404 as an unknown tenant, never a hint that the other tenant exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.params import FromPath

from app.console.adapters import ConsoleApi
from app.dependencies import get_runtime
from auth import apikeys
from auth.middleware import SESSION_COOKIE
from kernel.errors import AppError
from kernel.observability import ensure_request_id
from kernel.tenancy import Role, TenantContext, TenantRoute

PREFIX = "/console"


class ConsoleNotFound(Exception):
    """Unknown tenant, another tenant's console, or no such page: a 404 page."""


class ConsoleForbidden(Exception):
    """Signed in, but the page needs a role this person does not have: a 403 page."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles
        super().__init__(", ".join(role.value for role in roles))


class SignInRequired(Exception):
    """No valid session for this tenant: back to the tenant's sign-in entry."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(slug)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    ctx: TenantContext
    api: ConsoleApi

    @property
    def slug(self) -> str:
        return self.ctx.tenant_slug

    def can(self, *roles: Role) -> bool:
        return not roles or self.ctx.has_role(*roles)

    def require(self, *roles: Role) -> None:
        if not self.can(*roles):
            raise ConsoleForbidden(roles)


async def tenant_of(request: Request[Any, Any, Any], slug: str) -> TenantRoute:
    """The active tenant a console path names (404 for an unknown, suspended or deleted one)."""
    authenticator = get_runtime(request).authenticator
    route = await authenticator.tenant_route_by_slug(slug)
    if route is None:
        raise ConsoleNotFound()
    try:
        authenticator.check_status(route)
    except AppError:
        raise ConsoleNotFound() from None
    return route


async def provide_console_user(
    request: Request[Any, Any, Any], tenant: FromPath[str]
) -> ConsoleUser:
    route = await tenant_of(request, tenant)
    token = request.cookies.get(SESSION_COOKIE)
    if not token or not token.startswith(apikeys.SESSION_PREFIX):
        raise SignInRequired(route.slug)
    try:
        principal = await get_runtime(request).authenticator.authenticate(
            None, session_cookie=token
        )
    except AppError:  # expired, revoked, deactivated user: sign in again
        raise SignInRequired(route.slug) from None
    if not isinstance(principal, TenantContext) or principal.auth_method != "session":
        raise SignInRequired(route.slug)
    if principal.tenant_id != route.id:
        raise ConsoleNotFound()
    api = ConsoleApi(request.app, token, ensure_request_id(request.scope))
    return ConsoleUser(ctx=principal, api=api)
