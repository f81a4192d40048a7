"""SSO routes: the tenant admin's OIDC settings, and the browser's OIDC login and callback."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, put
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect

from audit.services import AuditLog
from auth.adapters.oidc import OidcProviders
from auth.context import system_context
from auth.middleware import EXCLUDE_FROM_AUTH, SESSION_COOKIE
from auth.oidc import (
    DEFAULT_CLAIMS,
    InvalidIssuer,
    OidcCallback,
    OidcConfigService,
    OidcLogin,
    OidcLoginCookie,
    OidcNotConfigured,
    OidcSettings,
    keycloak_issuer,
    redirect_uri,
)
from auth.schemas import OidcConfigRead, OidcConfigWrite
from auth.services import AuthenticationService
from auth.sso import safe_return_path
from kernel.api import SECURED, problem_responses
from kernel.egress import EgressRefused
from kernel.guards import requires_role
from kernel.observability import ensure_request_id
from kernel.settings import IdentitySettings, Settings
from kernel.tenancy import Role, TenantContext, TenantRoute
from keys.services import Keyring
from residency.registry import RegionRegistry
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


def oidc_read(
    config: OidcSettings, has_secret: bool, identity: IdentitySettings, ctx: TenantContext
) -> OidcConfigRead:
    return OidcConfigRead(
        issuer=config.issuer,
        client_id=config.client_id,
        has_client_secret=has_secret,
        scope=" ".join(config.scopes),
        claims=config.claims,
        audience=config.audience,
        enabled=config.enabled,
        redirect_uri=redirect_uri(identity, ctx.tenant_slug),
    )


class OidcConfigController(Controller):
    path = "/v1/admin/sso/oidc"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]

    @get("/", responses=problem_responses(404), summary="The tenant's OIDC identity provider")
    async def get_oidc(
        self,
        oidc_config: NamedDependency[OidcConfigService],
        ctx: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
    ) -> OidcConfigRead:
        stored = await oidc_config.read()
        if stored is None:
            raise OidcNotConfigured()
        return oidc_read(*stored, settings.identity, ctx)

    @put(
        "/",
        responses=problem_responses(422),
        summary="Configure OIDC with any provider (its issuer URL); the client secret is sealed",
    )
    async def put_oidc(
        self,
        oidc_config: NamedDependency[OidcConfigService],
        ctx: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        oidc: NamedDependency[OidcProviders],
        registry: NamedDependency[RegionRegistry],
        data: JSONBody[OidcConfigWrite],
    ) -> OidcConfigRead:
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
        await oidc_config.check_issuer(
            issuer, oidc.egress, registry, production=settings.environment == "production"
        )
        claims = {**DEFAULT_CLAIMS, **{k: v for k, v in vars_of(data.claims).items() if v}}
        config = OidcSettings(
            issuer=issuer,
            client_id=data.client_id,
            scopes=tuple(data.scope.split()),
            claims=claims,
            audience=data.audience or data.client_id,
            enabled=data.enabled,
        )
        await oidc_config.write(config, data.client_secret)
        stored = await oidc_config.read()
        assert stored is not None
        return oidc_read(*stored, settings.identity, ctx)


def vars_of(struct: Any) -> dict[str, str]:
    return {field: getattr(struct, field) for field in struct.__struct_fields__}


async def sso_tenant(authenticator: AuthenticationService, slug: str) -> TenantRoute:
    """The tenant a sign-in URL names: unknown → 404, suspended or deleted → 403."""
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
        self,
        authenticator: NamedDependency[AuthenticationService],
        registry: NamedDependency[RegionRegistry],
        keyring: NamedDependency[Keyring],
        oidc_login: NamedDependency[OidcLogin],
        settings: NamedDependency[Settings],
        tenant_slug: TenantSlug,
        return_to: ReturnTo = None,
    ) -> Redirect:
        route = await sso_tenant(authenticator, tenant_slug)
        ctx = system_context(route)
        async with registry.tenant_transaction(ctx, read_only=True) as session:
            config = OidcConfigService(
                session, ctx, keyring.for_tenant(session, ctx), AuditLog(session, ctx)
            )
            url, state = await oidc_login.begin(route, config, safe_return_path(return_to))
        identity = settings.identity
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
        authenticator: NamedDependency[AuthenticationService],
        oidc_callback: NamedDependency[OidcCallback],
        settings: NamedDependency[Settings],
        tenant_slug: TenantSlug,
        code: CallbackParam = None,
        login_state: StateParam = None,
        error: CallbackParam = None,
    ) -> Response[Any]:
        route = await sso_tenant(authenticator, tenant_slug)
        issued, return_to = await oidc_callback(
            route,
            code=code,
            state=login_state,
            cookie=request.cookies.get(OidcLoginCookie.COOKIE),
            error=error,
            request_id=ensure_request_id(request.scope),
        )
        identity = settings.identity
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
