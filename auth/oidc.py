"""OpenID Connect for a tenant: its IdP configuration, the authorization-code flow with PKCE,
and IdP access tokens accepted directly as API bearer tokens.

The client secret is sealed with the tenant's own keys before it is stored. Login state (state,
nonce, PKCE verifier, where to return) travels in a signed, short-lived, HttpOnly cookie bound to
the tenant, so a callback can only complete the login that this browser started for this tenant.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput, NotFound, ServiceUnavailable, Unauthenticated
from app.settings import IdentitySettings as IdentityConfig
from audit.schemas import AuditAction, AuditOutcome, ResourceType
from audit.services import AuditLog
from auth.adapters.keycloak import KeycloakOidc, OidcClient, OidcRejected, OidcUnreachable
from auth.context import TenantContext, TenantRoute, system_context
from auth.models import IdentityProvider, User
from auth.repositories import IdentityProviderRepository, UserRepository
from auth.sso import IssuedSession, Provisioner, SessionService, SsoIdentity, record_login
from keys.services import TenantKeys
from residency.registry import RegionRegistry

KIND = "oidc"
DEFAULT_CLAIMS = {
    "user_id": "sub",
    "email": "email",
    "name": "name",
    "groups": "groups",
    "given_name": "given_name",
    "family_name": "family_name",
}
_ISSUER = re.compile(r"^(https?://[^/?#\s]+(?:/[^?#\s]*)?)/realms/([^/?#\s]+)/?$")


class OidcNotConfigured(NotFound):
    code = "oidc_not_configured"
    title = "OIDC not configured"

    def __init__(self) -> None:
        super().__init__("This tenant has no enabled OIDC identity provider.")


class OidcLoginFailed(Unauthenticated):
    code = "oidc_login_failed"
    title = "OIDC login failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The sign-in could not be completed ({reason}).", reason=reason)


class OidcProviderUnavailable(ServiceUnavailable):
    code = "idp_unavailable"
    title = "Identity provider unavailable"

    def __init__(self) -> None:
        super().__init__("The tenant's identity provider did not answer.")


class InvalidIssuer(InvalidInput):
    code = "invalid_issuer"
    title = "Invalid issuer"

    def __init__(self) -> None:
        super().__init__(
            "Give a Keycloak-shaped issuer (https://host/realms/NAME) or a server_url and realm."
        )


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """A tenant's OIDC IdP as stored (the secret separately, sealed)."""

    server_url: str
    realm: str
    client_id: str
    scopes: tuple[str, ...]
    claims: dict[str, str]
    audience: str
    enabled: bool

    @property
    def issuer(self) -> str:
        return f"{self.server_url.rstrip('/')}/realms/{self.realm}"

    @classmethod
    def from_row(cls, row: IdentityProvider) -> OidcSettings:
        config = row.config
        return cls(
            server_url=config["server_url"],
            realm=config["realm"],
            client_id=config["client_id"],
            scopes=tuple(config.get("scopes", ["openid"])),
            claims={**DEFAULT_CLAIMS, **config.get("claims", {})},
            audience=config.get("audience") or config["client_id"],
            enabled=bool(config.get("enabled", True)),
        )


def split_issuer(issuer: str) -> tuple[str, str]:
    match = _ISSUER.match(issuer)
    if match is None:
        raise InvalidIssuer()
    return match.group(1), match.group(2)


def redirect_uri(identity: IdentityConfig, tenant_slug: str) -> str:
    return f"{identity.public_url.rstrip('/')}/auth/{tenant_slug}/oidc/callback"


class OidcConfigService:
    def __init__(
        self, session: AsyncSession, ctx: TenantContext, keys: TenantKeys, audit: AuditLog
    ) -> None:
        self.providers = IdentityProviderRepository(session, ctx)
        self.keys = keys
        self.audit = audit

    async def read(self) -> tuple[OidcSettings, bool] | None:
        row = await self.providers.get(KIND)
        return (OidcSettings.from_row(row), row.sealed_secret is not None) if row else None

    async def write(self, settings: OidcSettings, client_secret: str | None) -> None:
        config = {
            "server_url": settings.server_url,
            "realm": settings.realm,
            "client_id": settings.client_id,
            "scopes": list(settings.scopes),
            "claims": settings.claims,
            "audience": settings.audience,
            "enabled": settings.enabled,
        }
        row = await self.providers.put(KIND, config)
        if client_secret is not None:
            row.sealed_secret = await self.keys.seal(
                "oidc-client-secret", KIND, client_secret.encode()
            )
        await self.providers.session.flush()
        await self.audit.record(
            AuditAction.SSO_CONFIGURED,
            resource_type=ResourceType.IDENTITY_PROVIDER,
            resource_id=KIND,
            detail={"enabled": settings.enabled, "secret_changed": client_secret is not None},
        )

    async def client(self) -> tuple[OidcSettings, OidcClient]:
        row = await self.providers.get(KIND)
        if row is None:
            raise OidcNotConfigured()
        settings = OidcSettings.from_row(row)
        if not settings.enabled:
            raise OidcNotConfigured()
        secret = None
        if row.sealed_secret is not None:
            secret = (await self.keys.open("oidc-client-secret", KIND, row.sealed_secret)).decode()
        return settings, OidcClient(settings.server_url, settings.realm, settings.client_id, secret)


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class LoginState:
    """The signed cookie that carries one login from /login to /callback."""

    COOKIE = "bulwark_oidc"

    def __init__(self, pepper: str, max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(pepper, salt="bulwark-oidc-login")
        self.max_age = max_age

    def dump(self, data: dict[str, str]) -> str:
        return self._serializer.dumps(data)

    def load(self, value: str | None, *, tenant_id: str, state: str | None) -> dict[str, str]:
        if not value or not state:
            raise OidcLoginFailed("missing_state")
        try:
            data: dict[str, str] = self._serializer.loads(value, max_age=self.max_age)
        except SignatureExpired:
            raise OidcLoginFailed("login_expired") from None
        except BadSignature:
            raise OidcLoginFailed("invalid_state") from None
        if data.get("tenant") != tenant_id or not secrets.compare_digest(
            data.get("state", ""), state
        ):
            raise OidcLoginFailed("state_mismatch")
        return data


def identity_from_claims(settings: OidcSettings, claims: dict[str, Any]) -> SsoIdentity:
    mapping = settings.claims
    subject, email = claims.get(mapping["user_id"]), claims.get(mapping["email"])
    if (
        not isinstance(subject, str)
        or not subject
        or not isinstance(email, str)
        or "@" not in email
    ):
        raise OidcRejected("missing_identity_claims")
    groups = claims.get(mapping["groups"]) or []
    if not isinstance(groups, list):
        groups = [groups]
    name = claims.get(mapping["name"])

    def text(key: str) -> str | None:
        value = claims.get(mapping.get(key, key))
        return value[:200] if isinstance(value, str) and value else None

    return SsoIdentity(
        method="oidc",
        subject=subject[:256],
        email=email[:320].lower(),
        display_name=(name if isinstance(name, str) and name else email)[:200],
        given_name=text("given_name"),
        family_name=text("family_name"),
        groups=tuple(str(g).strip("/")[:256] for g in groups if isinstance(g, str | int)),
    )


class OidcLogin:
    """Begin and complete the authorization-code flow for one tenant."""

    def __init__(self, oidc: KeycloakOidc, identity: IdentityConfig, pepper: str) -> None:
        self.oidc = oidc
        self.identity = identity
        self.pepper = pepper
        self.state = LoginState(pepper, identity.login_timeout_seconds)

    async def begin(
        self, route: TenantRoute, config: OidcConfigService, return_to: str
    ) -> tuple[str, str]:
        settings, client = await config.client()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier, challenge = _pkce_pair()
        try:
            url = await self.oidc.authorization_url(
                client,
                redirect_uri=redirect_uri(self.identity, route.slug),
                scope=" ".join(settings.scopes),
                state=state,
                nonce=nonce,
                code_challenge=challenge,
            )
        except OidcUnreachable:
            raise OidcProviderUnavailable() from None
        except OidcRejected as exc:
            raise OidcLoginFailed(exc.reason) from None
        cookie = self.state.dump(
            {
                "tenant": str(route.id),
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "return_to": return_to,
            }
        )
        return url, cookie

    async def complete(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        route: TenantRoute,
        config: OidcConfigService,
        audit: AuditLog,
        *,
        code: str,
        login: dict[str, str],
    ) -> tuple[User, IssuedSession]:
        settings, client = await config.client()
        try:
            tokens = await self.oidc.exchange_code(
                client,
                code=code,
                redirect_uri=redirect_uri(self.identity, route.slug),
                code_verifier=login["verifier"],
            )
            claims = await self.oidc.validate(
                client,
                tokens["id_token"],
                audience=settings.client_id,
                leeway=self.identity.clock_skew_seconds,
                nonce=login["nonce"],
            )
            identity = identity_from_claims(settings, claims)
        except OidcUnreachable:
            raise OidcProviderUnavailable() from None
        except OidcRejected as exc:
            raise OidcLoginFailed(exc.reason) from None
        user = await Provisioner(session, ctx).provision(identity, audit)
        issued = await SessionService(
            session,
            ctx,
            pepper=self.pepper,
            ttl=timedelta(seconds=self.identity.session_ttl_seconds),
        ).issue(user, "oidc")
        await audit.record(
            AuditAction.SSO_LOGIN,
            resource_type=ResourceType.USER,
            resource_id=user.id,
            detail={"method": "oidc", "reason": "ok", "session_id": issued.row.id},
        )
        return user, issued


class OidcCallback:
    """The callback's own unit of work: provisioning, the session and the success event commit
    together; a refusal rolls them back and is then recorded in a transaction of its own."""

    def __init__(self, login: OidcLogin, registry: RegionRegistry, keys_for: Any) -> None:
        self.login = login
        self.registry = registry
        self.keys_for = keys_for

    async def __call__(
        self,
        route: TenantRoute,
        *,
        code: str | None,
        state: str | None,
        cookie: str | None,
        error: str | None,
        request_id: str | None,
    ) -> tuple[IssuedSession, str]:
        ctx = system_context(route)
        try:
            if error:
                raise OidcLoginFailed("idp_error")
            login = self.login.state.load(cookie, tenant_id=str(route.id), state=state)
            if not code:
                raise OidcLoginFailed("missing_code")
            async with self.registry.tenant_transaction(ctx) as session:
                audit = AuditLog(session, ctx, request_id=request_id)
                config = OidcConfigService(session, ctx, self.keys_for(session, ctx), audit)
                _, issued = await self.login.complete(
                    session, ctx, route, config, audit, code=code, login=login
                )
        except Unauthenticated as exc:  # a refused login, or an account the IdP may not use
            reason = str(exc.extra.get("reason") or exc.code)
            await record_oidc_failure(self.registry, route, reason, request_id)
            raise
        return issued, login["return_to"]


class OidcBearer:
    """Access tokens from a tenant's own IdP, accepted as API credentials (``X-Bulwark-Tenant``)."""

    def __init__(
        self,
        oidc: KeycloakOidc,
        registry: RegionRegistry,
        keys_for: Any,
        identity: IdentityConfig,
        principal: Any,
    ) -> None:
        self.oidc = oidc
        self.registry = registry
        self.keys_for = keys_for  # (session, ctx) -> TenantKeys
        self.identity = identity
        self.principal = principal  # AuthenticationService.user_principal

    async def __call__(self, route: TenantRoute, token: str) -> TenantContext:
        lookup = system_context(route)
        async with self.registry.tenant_transaction(lookup, read_only=True) as session:
            config = OidcConfigService(
                session, lookup, self.keys_for(session, lookup), AuditLog(session, lookup)
            )
            try:
                settings, client = await config.client()
            except OidcNotConfigured:
                raise OidcLoginFailed("oidc_not_configured") from None
            try:
                claims = await self.oidc.validate(
                    client,
                    token,
                    audience=settings.audience,
                    leeway=self.identity.clock_skew_seconds,
                )
                identity = identity_from_claims(settings, claims)
            except OidcUnreachable:
                raise OidcProviderUnavailable() from None
            except OidcRejected as exc:
                raise OidcLoginFailed(exc.reason) from None
            user = await UserRepository(session, lookup).get_by_idp_subject(identity.subject)
        if user is None:
            # First call with this identity: provision it (a write, in its own transaction).
            async with self.registry.tenant_transaction(lookup) as session:
                audit = AuditLog(session, lookup)
                user = await Provisioner(session, lookup).provision(identity, audit)
        async with self.registry.tenant_transaction(lookup, read_only=True) as session:
            principal: TenantContext = await self.principal(
                session, lookup, route, user.id, "oidc", None
            )
        return principal


async def record_oidc_failure(
    registry: RegionRegistry, route: TenantRoute, reason: str, request_id: str | None
) -> None:
    await record_login(
        registry,
        system_context(route),
        method="oidc",
        outcome=AuditOutcome.FAILURE,
        reason=reason,
        request_id=request_id,
    )
