"""OpenID Connect for a tenant: its IdP configuration, the authorization-code flow with PKCE,
and IdP access tokens accepted directly as API bearer tokens.

Any standards-compliant provider: the tenant names its issuer (Entra ID
``https://login.microsoftonline.com/<tenant-id>/v2.0``, Okta ``https://<org>.okta.com/oauth2/default``,
Auth0 ``https://<tenant>.auth0.com/``, Keycloak ``https://<host>/realms/<realm>``) and everything
else comes from its discovery document (``auth/adapters/oidc.py``). Groups and roles are read
from configurable claim paths (``groups``, ``roles``, ``realm_access.roles``); Entra ID's group
overage marker (more groups than fit in a token) is recorded in the sign-in audit event and no
group is assumed.

The client secret is sealed with the tenant's own keys before it is stored. Login state (state,
nonce, PKCE verifier, where to return) travels in a signed, short-lived, HttpOnly cookie bound to
the tenant, so a callback can only complete the login that this browser started for this tenant.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from auth.adapters.oidc import (
    OidcClient,
    OidcProviders,
    OidcRejected,
    OidcUnreachable,
    pkce_pair,
)
from auth.context import system_context
from auth.models import IdentityProvider, User
from auth.repositories import IdentityProviderRepository, UserRepository
from auth.sso import IssuedSession, Provisioner, SessionService, SsoIdentity, record_login
from kernel.audit_events import AuditAction, AuditOutcome, ResourceType
from kernel.egress import EgressPolicy, EgressRefused
from kernel.errors import InvalidInput, NotFound, ServiceUnavailable, Unauthenticated
from kernel.settings import IdentitySettings as IdentityConfig
from kernel.tenancy import TenantContext, TenantRoute
from keys.services import TenantKeys
from residency.registry import RegionRegistry

KIND = "oidc"
# Where each attribute is read from the token: a claim name, or a dotted path into nested
# claims (``realm_access.roles``). ``roles`` is optional; its values join the groups.
DEFAULT_CLAIMS = {
    "user_id": "sub",
    "email": "email",
    "name": "name",
    "groups": "groups",
    "given_name": "given_name",
    "family_name": "family_name",
}


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

    def __init__(self, detail: str = "Give the issuer URL of the identity provider.") -> None:
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """A tenant's OIDC IdP as stored (the secret separately, sealed)."""

    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    claims: dict[str, str]
    audience: str
    enabled: bool

    @classmethod
    def from_row(cls, row: IdentityProvider) -> OidcSettings:
        config = row.config
        issuer = config.get("issuer")
        if not issuer:  # written before any issuer was accepted: Keycloak's server URL and realm
            issuer = f"{config['server_url'].rstrip('/')}/realms/{config['realm']}"
        return cls(
            issuer=issuer,
            client_id=config["client_id"],
            scopes=tuple(config.get("scopes", ["openid"])),
            claims={**DEFAULT_CLAIMS, **config.get("claims", {})},
            audience=config.get("audience") or config["client_id"],
            enabled=bool(config.get("enabled", True)),
        )


def keycloak_issuer(server_url: str, realm: str) -> str:
    return f"{server_url.rstrip('/')}/realms/{realm}"


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
            "issuer": settings.issuer,
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

    async def check_issuer(
        self, issuer: str, egress: EgressPolicy, registry: RegionRegistry, *, production: bool
    ) -> None:
        """An issuer is an https URL without query or fragment (OIDC Discovery), that the
        egress guard lets Bulwark reach (422 ``egress_refused``, audited, otherwise)."""
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or (production and parts.scheme != "https"):
            raise InvalidIssuer("The issuer is an https URL without query or fragment.")
        try:
            await egress.for_tenant(self.providers.ctx.tenant_slug).check_destination(issuer)
        except EgressRefused as exc:
            self.audit.record_refusal(
                registry,
                AuditAction.EGRESS_REFUSED,
                resource_type=ResourceType.IDENTITY_PROVIDER,
                resource_id=KIND,
                detail=exc.audit_detail(),
            )
            raise

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
        return settings, OidcClient(
            tenant=self.providers.ctx.tenant_slug,
            issuer=settings.issuer,
            client_id=settings.client_id,
            client_secret=secret,
        )


class OidcLoginCookie:
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


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects when no claim has that name
    (Auth0's namespaced claims are URLs with dots in them)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [str(v).strip("/")[:256] for v in values if isinstance(v, str | int) and str(v)]


def groups_overage(claims: dict[str, Any]) -> bool:
    """Entra ID's marker for a user in more groups than fit in a token: ``groups`` is absent
    and ``_claim_names`` points at Microsoft Graph instead (``hasgroups`` in implicit flows)."""
    names = claims.get("_claim_names")
    return (isinstance(names, dict) and "groups" in names) or claims.get("hasgroups") is True


def identity_from_claims(settings: OidcSettings, claims: dict[str, Any]) -> SsoIdentity:
    mapping = settings.claims
    subject, email = claim_at(claims, mapping["user_id"]), claim_at(claims, mapping["email"])
    if (
        not isinstance(subject, str)
        or not subject
        or not isinstance(email, str)
        or "@" not in email
    ):
        raise OidcRejected("missing_identity_claims")
    groups = _names(claim_at(claims, mapping["groups"]))
    if mapping.get("roles"):
        groups += _names(claim_at(claims, mapping["roles"]))
    name = claim_at(claims, mapping["name"])

    def text(key: str) -> str | None:
        value = claim_at(claims, mapping.get(key, key))
        return value[:200] if isinstance(value, str) and value else None

    return SsoIdentity(
        method="oidc",
        subject=subject[:256],
        email=email[:320].lower(),
        display_name=(name if isinstance(name, str) and name else email)[:200],
        given_name=text("given_name"),
        family_name=text("family_name"),
        groups=tuple(dict.fromkeys(groups)),
        groups_overage=groups_overage(claims),
    )


def provider_unavailable(
    exc: OidcUnreachable, audit: AuditLog, registry: RegionRegistry
) -> OidcProviderUnavailable:
    """The 503 for a provider that cannot be used now; a URL the egress guard refused (the
    issuer, or an endpoint its discovery document names) is audited as well."""
    if exc.refused is not None:
        audit.record_refusal(
            registry,
            AuditAction.EGRESS_REFUSED,
            resource_type=ResourceType.IDENTITY_PROVIDER,
            resource_id=KIND,
            detail={"reason": exc.refused},
        )
    return OidcProviderUnavailable()


class OidcLogin:
    """Begin and complete the authorization-code flow for one tenant."""

    def __init__(
        self,
        oidc: OidcProviders,
        identity: IdentityConfig,
        pepper: str,
        registry: RegionRegistry,
    ) -> None:
        self.oidc = oidc
        self.registry = registry
        self.identity = identity
        self.pepper = pepper
        self.state = OidcLoginCookie(pepper, identity.login_timeout_seconds)

    async def begin(
        self, route: TenantRoute, config: OidcConfigService, return_to: str
    ) -> tuple[str, str]:
        settings, client = await config.client()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        try:
            url = await self.oidc.authorization_url(
                client,
                redirect_uri=redirect_uri(self.identity, route.slug),
                scope=" ".join(settings.scopes),
                state=state,
                nonce=nonce,
                code_challenge=challenge,
            )
        except OidcUnreachable as exc:
            raise provider_unavailable(exc, config.audit, self.registry) from None
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
        except OidcUnreachable as exc:
            raise provider_unavailable(exc, audit, self.registry) from None
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
            detail={
                "method": "oidc",
                "reason": "ok",
                "session_id": issued.row.id,
                # Entra ID sent no groups (too many): no group-mapped role was granted.
                **({"groups_overage": True} if identity.groups_overage else {}),
            },
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
        oidc: OidcProviders,
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
            except OidcUnreachable as exc:
                raise provider_unavailable(exc, config.audit, self.registry) from None
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
