"""SSO routes: the tenant admin's OIDC settings, and the browser's OIDC login and callback."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, put
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import TENANT_DEPENDENCIES, get_runtime
from audit.deps import AUDIT_DEPENDENCIES
from audit.services import AuditLog
from auth.context import system_context
from auth.middleware import EXCLUDE_FROM_AUTH, SESSION_COOKIE
from auth.oidc import (
    DEFAULT_CLAIMS,
    InvalidIssuer,
    OidcConfigService,
    OidcLoginCookie,
    OidcNotConfigured,
    OidcSettings,
    keycloak_issuer,
    redirect_uri,
)
from auth.schemas import OidcConfigRead, OidcConfigWrite
from auth.sso import safe_return_path
from kernel.api import SECURED, problem_responses
from kernel.egress import EgressRefused
from kernel.guards import requires_role
from kernel.observability import ensure_request_id
from kernel.tenancy import Role, TenantContext, TenantRoute
from tenants.errors import TenantNotFound

TenantSlug = FromPath[str]
# Printable ASCII only: what IdPs send, and no multi-byte blow-up of the request line.
ReturnTo = Annotated[
    str | None,
    QueryParameter(
        max_length=2000,
        pattern=r"^[!-~]*$",
        description="Where to land after login: a path on this deployment.",
    ),
]
CallbackParam = Annotated[str | None, QueryParameter(max_length=2048, pattern=r"^[!-~]*$")]
# "state" is a reserved keyword in Litestar handlers: read the query parameter under another name.
StateParam = Annotated[
    str | None, QueryParameter(name="state", max_length=512, pattern=r"^[!-~]*$")
]


def provide_oidc_config(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> OidcConfigService:
    return OidcConfigService(db, ctx, get_runtime(request).keyring.for_tenant(db, ctx), audit)


def oidc_read(
    settings: OidcSettings, has_secret: bool, request: Request[Any, Any, Any], ctx: TenantContext
) -> OidcConfigRead:
    return OidcConfigRead(
        issuer=settings.issuer,
        client_id=settings.client_id,
        has_client_secret=has_secret,
        scope=" ".join(settings.scopes),
        claims=settings.claims,
        audience=settings.audience,
        enabled=settings.enabled,
        redirect_uri=redirect_uri(get_runtime(request).settings.identity, ctx.tenant_slug),
    )


class OidcConfigController(Controller):
    path = "/v1/admin/sso/oidc"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]
    dependencies = {
        **TENANT_DEPENDENCIES,
        **AUDIT_DEPENDENCIES,
        "oidc": Provide(provide_oidc_config, sync_to_thread=False),
    }

    @get("/", responses=problem_responses(404), summary="The tenant's OIDC identity provider")
    async def get_oidc(
        self,
        request: Request[Any, Any, Any],
        oidc: NamedDependency[OidcConfigService],
        ctx: NamedDependency[TenantContext],
    ) -> OidcConfigRead:
        stored = await oidc.read()
        if stored is None:
            raise OidcNotConfigured()
        return oidc_read(*stored, request, ctx)

    @put(
        "/",
        responses=problem_responses(422),
        summary="Configure OIDC with any provider (its issuer URL); the client secret is sealed",
    )
    async def put_oidc(
        self,
        request: Request[Any, Any, Any],
        oidc: NamedDependency[OidcConfigService],
        ctx: NamedDependency[TenantContext],
        data: JSONBody[OidcConfigWrite],
    ) -> OidcConfigRead:
        runtime = get_runtime(request)
        if data.issuer:
            issuer = data.issuer
        elif data.server_url and data.realm:  # Keycloak's two parts, as accepted before
            issuer = keycloak_issuer(data.server_url, data.realm)
        else:
            raise InvalidIssuer()
        try:
            urlsplit(issuer)
        except ValueError:  # an unbalanced or invalid [IPv6] host: nothing to connect to
            raise EgressRefused("not_http", "") from None
        await oidc.check_issuer(
            issuer,
            runtime.oidc.egress,
            runtime.registry,
            production=runtime.settings.environment == "production",
        )
        claims = {**DEFAULT_CLAIMS, **{k: v for k, v in vars_of(data.claims).items() if v}}
        settings = OidcSettings(
            issuer=issuer,
            client_id=data.client_id,
            scopes=tuple(data.scope.split()),
            claims=claims,
            audience=data.audience or data.client_id,
            enabled=data.enabled,
        )
        await oidc.write(settings, data.client_secret)
        stored = await oidc.read()
        assert stored is not None
        return oidc_read(*stored, request, ctx)


def vars_of(struct: Any) -> dict[str, str]:
    return {field: getattr(struct, field) for field in struct.__struct_fields__}


async def sso_tenant(request: Request[Any, Any, Any], slug: str) -> TenantRoute:
    """The tenant a sign-in URL names: unknown → 404, suspended or deleted → 403."""
    authenticator = get_runtime(request).authenticator
    route = await authenticator.tenant_route_by_slug(slug)
    if route is None:
        raise TenantNotFound()
    authenticator.check_status(route)
    return route


class OidcLoginController(Controller):
    path = "/auth/{tenant_slug:str}/oidc"
    tags = ["sign-in"]
    opt = {EXCLUDE_FROM_AUTH: True}

    @get(
        "/login",
        status_code=302,
        responses=problem_responses(404),
        summary="Start an OIDC sign-in: redirect to the IdP (state, nonce, PKCE S256)",
    )
    async def oidc_login(
        self, request: Request[Any, Any, Any], tenant_slug: TenantSlug, return_to: ReturnTo = None
    ) -> Redirect:
        runtime = get_runtime(request)
        route = await sso_tenant(request, tenant_slug)
        ctx = system_context(route)
        async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
            config = OidcConfigService(
                session, ctx, runtime.keyring.for_tenant(session, ctx), AuditLog(session, ctx)
            )
            url, state = await runtime.oidc_login.begin(route, config, safe_return_path(return_to))
        identity = runtime.settings.identity
        return Redirect(
            url,
            status_code=302,
            cookies=[
                Cookie(
                    key=OidcLoginCookie.COOKIE,
                    value=state,
                    path=f"/auth/{route.slug}/oidc",
                    max_age=identity.login_timeout_seconds,
                    httponly=True,
                    secure=identity.cookie_secure,
                    samesite="lax",
                )
            ],
        )

    @get(
        "/callback",
        status_code=303,
        responses=problem_responses(404),
        summary="Complete an OIDC sign-in: exchange the code, validate, start a session",
    )
    async def oidc_callback(
        self,
        request: Request[Any, Any, Any],
        tenant_slug: TenantSlug,
        code: CallbackParam = None,
        login_state: StateParam = None,
        error: CallbackParam = None,
    ) -> Response[Any]:
        runtime = get_runtime(request)
        route = await sso_tenant(request, tenant_slug)
        issued, return_to = await runtime.oidc_callback(
            route,
            code=code,
            state=login_state,
            cookie=request.cookies.get(OidcLoginCookie.COOKIE),
            error=error,
            request_id=ensure_request_id(request.scope),
        )
        identity = runtime.settings.identity
        response = Redirect(
            safe_return_path(return_to),
            status_code=303,
            cookies=[
                Cookie(
                    key=SESSION_COOKIE,
                    value=issued.token,
                    path="/",
                    max_age=identity.session_ttl_seconds,
                    httponly=True,
                    secure=identity.cookie_secure,
                    samesite="lax",
                )
            ],
        )
        response.delete_cookie(OidcLoginCookie.COOKIE, path=f"/auth/{route.slug}/oidc")
        return response
