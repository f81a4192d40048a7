"""SAML 2.0 single sign-on, service-provider side.

``SamlConfigService`` keeps a tenant's IdP configuration (``identity_providers``, kind "saml"):
entity id, SSO URL, the signing certificates it trusts, the attribute mapping and which parts of
a response must be signed. ``SamlLoginService`` runs the browser round trip for one tenant, named
by its slug in the URL (``/auth/{slug}/saml/...``):

- ``begin``: an AuthnRequest (in the IdP's binding: HTTP-Redirect, or HTTP-POST when that is
  all the IdP offers) and a short-lived login state, signed with a key
  derived from the deployment secret, that the controller keeps in a cookie scoped to the tenant's
  SAML paths. It binds the login to the browser that started it (no login CSRF), names the tenant
  and carries the AuthnRequest id that the Response must answer and the validated return path.
- ``complete``: the Response is validated by the SAML adapter (signature, audience, recipient and
  destination, InResponseTo, times with the configured clock skew), its assertion id is consumed
  from the replay table, the user is provisioned just in time, and a Bulwark session is issued with
  its ``sso.login`` audit event — all in one transaction in the tenant's region. A refused login
  answers 401 with a stable code and leaves an ``sso.login`` failure event (its own transaction)
  naming only the code.

Return paths (``return_to``, ``RelayState``) are only ever this deployment's own absolute paths;
anything else (absolute URLs, ``//host``, backslashes, control characters) falls back to
``/v1/me``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from audit.pseudonyms import SYSTEM_SUBJECT, user_subject
from audit.services import AuditLog, AuditOrigin
from auth.adapters.saml import (
    IdentityProviderSettings,
    OneLoginSaml,
    Rejection,
    SamlRejected,
    SamlSettingsInvalid,
    ServiceProvider,
    SsoBinding,
    ValidatedAssertion,
)
from auth.context import system_context
from auth.errors import (
    SamlCertificateInvalid,
    SamlConfigInvalid,
    SamlExpired,
    SamlIdpError,
    SamlInvalidResponse,
    SamlInvalidSignature,
    SamlInvalidState,
    SamlLoginRejected,
    SamlMissingAttribute,
    SamlNotConfigured,
    SamlReplayed,
    SamlUnsignedConfiguration,
    SamlUnsolicitedResponse,
    SamlWrongAudience,
    SamlWrongDestination,
    SamlWrongIssuer,
)
from auth.models import IdentityProvider
from auth.repositories import IdentityProviderRepository, SamlAssertionRepository
from auth.schemas import DEFAULT_SAML_ATTRIBUTES, Email
from auth.services import AuthenticationService, normalize_email
from auth.sso import Provisioner, SessionService, SsoIdentity, record_login
from kernel.audit_events import AuditAction, AuditOutcome, ResourceType
from kernel.db import utcnow
from kernel.errors import Unauthenticated
from kernel.settings import IdentitySettings
from kernel.tenancy import TenantContext, TenantRoute
from tenants.errors import TenantDeleted, TenantNotFound, TenantSuspended
from tenants.schemas import SLUG_PATTERN, TenantStatus

SAML_KIND = "saml"
DEFAULT_RETURN_PATH = "/v1/me"
STATE_COOKIE = "bulwark_saml_state"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
MAX_RETURN_PATH = 1024
MIN_RSA_BITS = 2048
MAX_PEM_LENGTH = 16384
MAX_ATTRIBUTE_NAME = 256
MAX_EMAIL_LENGTH = 320
SLUG = re.compile(SLUG_PATTERN)

# A key check before the login's unit of work writes anything (the tenant's key must work).
KeyGate = Callable[[AsyncSession, TenantContext], Awaitable[None]]

_REJECTIONS: dict[Rejection, type[SamlLoginRejected]] = {
    Rejection.INVALID_SIGNATURE: SamlInvalidSignature,
    Rejection.WRONG_AUDIENCE: SamlWrongAudience,
    Rejection.EXPIRED: SamlExpired,
    Rejection.WRONG_DESTINATION: SamlWrongDestination,
    Rejection.WRONG_ISSUER: SamlWrongIssuer,
    Rejection.UNSOLICITED: SamlUnsolicitedResponse,
    Rejection.IDP_ERROR: SamlIdpError,
    Rejection.INVALID_RESPONSE: SamlInvalidResponse,
}


def safe_return_path(value: str | None) -> str | None:
    """``value`` when it is a path on this deployment, else None.

    Only ``/`` followed by printable ASCII: no scheme, no ``//host`` (protocol-relative), no
    backslash (browsers read ``/\\host`` as ``//host``), no whitespace or control characters
    (browsers drop tabs and newlines, turning ``/\\t/host`` into ``//host``).
    """
    if not value or len(value) > MAX_RETURN_PATH or not value.startswith("/"):
        return None
    if value.startswith("//") or any(c == "\\" or not "\x20" < c < "\x7f" for c in value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class SamlEndpoints:
    """One tenant's SP URLs, all derived from ``identity.public_url`` and the tenant's slug."""

    base_path: str  # the path under public_url: /auth/{slug}/saml
    public_url: str

    @classmethod
    def of(cls, public_url: str, slug: str) -> SamlEndpoints:
        return cls(base_path=f"/auth/{slug}/saml", public_url=public_url.rstrip("/"))

    @property
    def cookie_path(self) -> str:
        return urlsplit(self.public_url).path.rstrip("/") + self.base_path

    @property
    def acs_path(self) -> str:
        return f"{self.base_path}/acs"

    @property
    def entity_id(self) -> str:
        return f"{self.public_url}{self.base_path}/metadata"

    @property
    def acs_url(self) -> str:
        return f"{self.public_url}{self.acs_path}"

    @property
    def login_url(self) -> str:
        return f"{self.public_url}{self.base_path}/login"

    @property
    def sp(self) -> ServiceProvider:
        return ServiceProvider(entity_id=self.entity_id, acs_url=self.acs_url)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    pem: str
    sha256_fingerprint: str
    not_before: datetime
    not_after: datetime


def parse_certificate(pem: str) -> CertificateInfo:
    """One PEM X.509 certificate with an RSA (2048 bits or more) or EC key, or 422."""
    if len(pem) > MAX_PEM_LENGTH:
        raise SamlCertificateInvalid("A certificate is longer than any IdP signing certificate.")
    try:
        certificates = x509.load_pem_x509_certificates(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SamlCertificateInvalid("A certificate is not a PEM X.509 certificate.") from None
    if len(certificates) != 1:
        raise SamlCertificateInvalid("Give each certificate as its own list item.")
    certificate = certificates[0]
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SamlCertificateInvalid(f"RSA keys need at least {MIN_RSA_BITS} bits.")
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        raise SamlCertificateInvalid("IdP signing certificates must hold an RSA or EC key.")
    return CertificateInfo(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha256_fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


@dataclass(frozen=True, slots=True)
class SamlConfig:
    idp_entity_id: str
    sso_url: str
    certificates: tuple[CertificateInfo, ...]
    attributes: Mapping[str, tuple[str, ...]]
    want_assertions_signed: bool
    want_messages_signed: bool
    enabled: bool
    updated_at: datetime
    sso_binding: SsoBinding = SsoBinding.REDIRECT
    # The URL the IdP settings were imported from (``saml_metadata``), for a refresh.
    metadata_url: str | None = None

    @classmethod
    def of_row(cls, row: IdentityProvider) -> SamlConfig:
        config = row.config
        attributes = config.get("attributes") or {}
        return cls(
            idp_entity_id=config["idp_entity_id"],
            sso_url=config["sso_url"],
            certificates=tuple(parse_certificate(pem) for pem in config["certificates"]),
            attributes={
                kind: tuple(attributes.get(kind, defaults))
                for kind, defaults in DEFAULT_SAML_ATTRIBUTES.items()
            },
            want_assertions_signed=bool(config["want_assertions_signed"]),
            want_messages_signed=bool(config["want_messages_signed"]),
            enabled=bool(config["enabled"]),
            updated_at=row.updated_at,
            sso_binding=SsoBinding(config.get("sso_binding", SsoBinding.REDIRECT)),
            metadata_url=config.get("metadata_url"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "idp_entity_id": self.idp_entity_id,
            "sso_url": self.sso_url,
            "certificates": [c.pem for c in self.certificates],
            "attributes": {kind: list(names) for kind, names in self.attributes.items()},
            "want_assertions_signed": self.want_assertions_signed,
            "want_messages_signed": self.want_messages_signed,
            "enabled": self.enabled,
            "sso_binding": self.sso_binding.value,
            "metadata_url": self.metadata_url,
        }

    @property
    def idp(self) -> IdentityProviderSettings:
        return IdentityProviderSettings(
            entity_id=self.idp_entity_id,
            sso_url=self.sso_url,
            certificates=tuple(c.pem for c in self.certificates),
            want_assertions_signed=self.want_assertions_signed,
            want_messages_signed=self.want_messages_signed,
            sso_binding=self.sso_binding,
        )


class SamlConfigService:
    """A tenant admin's SAML configuration. Refuses configurations that would accept unsigned
    responses, certificates that do not parse, and anything the SAML toolkit could not use."""

    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        audit: AuditLog,
        *,
        toolkit: OneLoginSaml,
        endpoints: SamlEndpoints,
    ) -> None:
        self.providers = IdentityProviderRepository(session, ctx)
        self.audit = audit
        self.toolkit = toolkit
        self.endpoints = endpoints

    async def get(self) -> SamlConfig:
        config = await self.current()
        if config is None:
            raise SamlNotConfigured()
        return config

    async def current(self) -> SamlConfig | None:
        row = await self.providers.get(SAML_KIND)
        return SamlConfig.of_row(row) if row is not None else None

    async def put(
        self,
        *,
        idp_entity_id: str,
        sso_url: str,
        certificates: Sequence[str],
        attributes: Mapping[str, Sequence[str]],
        want_assertions_signed: bool,
        want_messages_signed: bool,
        enabled: bool,
        sso_binding: SsoBinding = SsoBinding.REDIRECT,
        metadata_url: str | None = None,
        source: str = "settings",
    ) -> SamlConfig:
        """Replace the tenant's SAML settings. ``source``: where the IdP settings came from
        (``settings``, ``metadata_xml``, ``metadata_url``), for the audit event."""
        if not (want_assertions_signed or want_messages_signed):
            raise SamlUnsignedConfiguration()
        for names in attributes.values():
            for name in names:
                if not 0 < len(name) <= MAX_ATTRIBUTE_NAME or not name.isprintable():
                    raise SamlConfigInvalid(
                        f"Attribute names are 1 to {MAX_ATTRIBUTE_NAME} printable characters."
                    )
        parsed: dict[str, CertificateInfo] = {}
        for pem in certificates:
            info = parse_certificate(pem)
            parsed.setdefault(info.sha256_fingerprint, info)
        config = SamlConfig(
            idp_entity_id=idp_entity_id,
            sso_url=sso_url,
            certificates=tuple(parsed.values()),
            attributes={
                kind: tuple(dict.fromkeys(attributes.get(kind, defaults)))
                for kind, defaults in DEFAULT_SAML_ATTRIBUTES.items()
            },
            want_assertions_signed=want_assertions_signed,
            want_messages_signed=want_messages_signed,
            enabled=enabled,
            updated_at=utcnow(),
            sso_binding=sso_binding,
            metadata_url=metadata_url,
        )
        try:
            self.toolkit.check(self.endpoints.sp, config.idp)
        except SamlSettingsInvalid as exc:
            raise SamlConfigInvalid(
                f"The SAML toolkit cannot use this configuration ({', '.join(exc.errors)})."
            ) from None
        row = await self.providers.put(SAML_KIND, config.to_json())
        # Settings and certificate fingerprints only: no URLs or names in the audit detail.
        await self.audit.record(
            AuditAction.SSO_CONFIGURED,
            resource_type=ResourceType.IDENTITY_PROVIDER,
            resource_id=SAML_KIND,
            detail={
                "kind": SAML_KIND,
                "source": source,
                "enabled": enabled,
                "want_assertions_signed": want_assertions_signed,
                "want_messages_signed": want_messages_signed,
                "certificates": [c.sha256_fingerprint for c in config.certificates],
            },
        )
        return SamlConfig.of_row(row)


@dataclass(frozen=True, slots=True)
class SamlLoginState:
    tenant_id: uuid.UUID
    request_id: str
    return_to: str


class LoginStateSigner:
    """Signs the login state (tenant, AuthnRequest id, return path) with a key derived from the
    deployment secret; a state older than ``identity.login_timeout_seconds`` is refused."""

    SALT = "bulwark.saml.login-state"

    def __init__(self, pepper: str, max_age: int) -> None:
        key = hmac.new(pepper.encode(), b"bulwark saml login state v1", hashlib.sha256).digest()
        self.serializer = URLSafeTimedSerializer(key, salt=self.SALT)
        self.max_age = max_age

    def issue(self, state: SamlLoginState) -> str:
        return str(
            self.serializer.dumps(
                {"t": str(state.tenant_id), "r": state.request_id, "p": state.return_to}
            )
        )

    def read(self, token: str | None) -> SamlLoginState | None:
        if not token:
            return None
        try:
            data = self.serializer.loads(token, max_age=self.max_age)
            state = SamlLoginState(uuid.UUID(data["t"]), str(data["r"]), str(data["p"]))
        except (BadData, KeyError, TypeError, ValueError):
            return None
        return state


@dataclass(frozen=True, slots=True)
class LoginRedirect:
    """Where the browser goes next: to ``url`` (HTTP-Redirect), or posting ``form`` to ``url``
    (HTTP-POST binding)."""

    url: str
    state: str
    cookie_path: str
    max_age: int
    form: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CompletedLogin:
    session_token: str
    max_age: int
    redirect_to: str
    cookie_path: str


def identity_of(
    assertion: ValidatedAssertion, attributes: Mapping[str, Sequence[str]]
) -> SsoIdentity:
    """The user a validated assertion describes, through the tenant's attribute mapping."""

    def values(kind: str) -> list[str]:
        for name in attributes.get(kind, ()):
            found = [" ".join(v.split()) for v in assertion.attributes.get(name, ())]
            found = [v for v in found if v]
            if found:
                return found
        return []

    def first(kind: str, limit: int = 200) -> str | None:
        found = values(kind)
        return found[0][:limit] if found else None

    # Never truncated: a shortened address could be someone else's (too long: refused below).
    email = first("email", limit=MAX_EMAIL_LENGTH + 1)
    if email is None and assertion.name_id_format == NAMEID_EMAIL:
        email = assertion.name_id.strip()
    try:
        email = msgspec.convert(normalize_email(email or ""), Email)
    except msgspec.ValidationError:
        raise SamlMissingAttribute() from None
    given, family = first("given_name"), first("family_name")
    full = " ".join(part for part in (given, family) if part)
    return SsoIdentity(
        method="saml",
        subject=assertion.name_id,
        email=email,
        display_name=(first("display_name") or full or email)[:200],
        given_name=given,
        family_name=family,
        groups=tuple(dict.fromkeys(g[:256] for g in values("groups")))[:100],
    )


class SamlLoginService:
    """The SAML login round trip of one tenant (metadata, AuthnRequest, ACS)."""

    def __init__(
        self,
        authenticator: AuthenticationService,
        *,
        toolkit: OneLoginSaml,
        identity: IdentitySettings,
        key_gate: KeyGate,
        request_id: str | None,
    ) -> None:
        self.authenticator = authenticator
        self.registry = authenticator.registry
        self.toolkit = toolkit
        self.identity = identity
        self.key_gate = key_gate
        self.request_id = request_id
        self.states = LoginStateSigner(authenticator.pepper, identity.login_timeout_seconds)

    async def metadata(self, slug: str) -> str:
        route = await self._route(slug)
        endpoints = SamlEndpoints.of(self.identity.public_url, route.slug)
        row = await self._row(system_context(route))
        want_assertions_signed = bool(row.config["want_assertions_signed"]) if row else True
        return self.toolkit.metadata(endpoints.sp, want_assertions_signed=want_assertions_signed)

    async def begin(self, slug: str, return_to: str | None) -> LoginRedirect:
        route = await self._route(slug)
        config = await self._config(system_context(route))
        endpoints = SamlEndpoints.of(self.identity.public_url, route.slug)
        path = safe_return_path(return_to) or DEFAULT_RETURN_PATH
        request = self.toolkit.authn_request(endpoints.sp, config.idp, relay_state=path)
        return LoginRedirect(
            url=request.url,
            state=self.states.issue(SamlLoginState(route.id, request.id, path)),
            cookie_path=endpoints.cookie_path,
            max_age=self.identity.login_timeout_seconds,
            form=dict(request.form) if request.binding is SsoBinding.POST else None,
        )

    async def complete(
        self, slug: str, saml_response: str, relay_state: str | None, state_token: str | None
    ) -> CompletedLogin:
        route = await self._route(slug)
        ctx = system_context(route)
        config = await self._config(ctx)
        endpoints = SamlEndpoints.of(self.identity.public_url, route.slug)
        try:
            return await self._complete(
                ctx, config, endpoints, saml_response, relay_state, state_token
            )
        except Unauthenticated as exc:  # a refused response, or a deactivated user
            await record_login(
                self.registry,
                ctx,
                method="saml",
                outcome=AuditOutcome.FAILURE,
                reason=exc.code,
                request_id=self.request_id,
            )
            raise

    async def _complete(
        self,
        ctx: TenantContext,
        config: SamlConfig,
        endpoints: SamlEndpoints,
        saml_response: str,
        relay_state: str | None,
        state_token: str | None,
    ) -> CompletedLogin:
        state = self.states.read(state_token)
        if state is None or state.tenant_id != ctx.tenant_id:
            raise SamlInvalidState()
        try:
            # XML parsing, schema and signature checks are CPU work: off the event loop.
            assertion = await asyncio.to_thread(
                self.toolkit.validate,
                endpoints.sp,
                config.idp,
                saml_response,
                public_url=self.identity.public_url,
                acs_path=endpoints.acs_path,
                request_id=state.request_id,
                clock_skew=self.identity.clock_skew_seconds,
            )
        except SamlRejected as exc:
            raise _REJECTIONS[exc.reason]() from None
        user_identity = identity_of(assertion, config.attributes)
        ttl = timedelta(seconds=self.identity.session_ttl_seconds)
        if assertion.session_not_on_or_after is not None:
            ttl = min(ttl, assertion.session_not_on_or_after - utcnow())
        token = await self._sign_in(ctx, assertion, user_identity, ttl)
        if relay_state:
            redirect_to = safe_return_path(relay_state) or DEFAULT_RETURN_PATH
        else:
            redirect_to = state.return_to
        return CompletedLogin(
            session_token=token,
            max_age=max(1, int(ttl.total_seconds())),
            redirect_to=redirect_to,
            cookie_path=endpoints.cookie_path,
        )

    async def _sign_in(
        self,
        ctx: TenantContext,
        assertion: ValidatedAssertion,
        user_identity: SsoIdentity,
        ttl: timedelta,
    ) -> str:
        """Consume the assertion, provision the user, issue the session: one transaction."""
        async with self.registry.tenant_transaction(ctx) as session:
            await self.key_gate(session, ctx)
            replay = SamlAssertionRepository(session, ctx)
            now = utcnow()
            await replay.purge_expired(now)
            # Kept while the assertion, or the login state it answers, could still be accepted.
            keep_until = max(assertion.valid_until, now + timedelta(seconds=self.states.max_age))
            if not await replay.consume(assertion.assertion_id, keep_until):
                raise SamlReplayed()
            system_log = AuditOrigin(SYSTEM_SUBJECT, self.request_id).log(session, ctx)
            user = await Provisioner(session, ctx).provision(user_identity, system_log)
            sessions = SessionService(session, ctx, pepper=self.authenticator.pepper, ttl=ttl)
            issued = await sessions.issue(user, SAML_KIND)
            await (
                AuditOrigin(user_subject(user.id), self.request_id)
                .log(session, ctx)
                .record(
                    AuditAction.SSO_LOGIN,
                    resource_type=ResourceType.USER,
                    resource_id=user.id,
                    detail={"method": SAML_KIND, "session_id": issued.row.id},
                )
            )
        return issued.token

    async def _route(self, slug: str) -> TenantRoute:
        # Anything that cannot be a slug is unknown without asking the database (which would
        # refuse some strings, e.g. with NUL, as an error rather than "not found").
        route = await self.authenticator.tenant_route_by_slug(slug) if SLUG.match(slug) else None
        if route is None:
            raise TenantNotFound()
        if route.deleted:
            raise TenantDeleted()
        if route.status != TenantStatus.ACTIVE.value:
            raise TenantSuspended()
        return route

    async def _row(self, ctx: TenantContext) -> IdentityProvider | None:
        async with self.registry.tenant_transaction(ctx, read_only=True) as session:
            return await IdentityProviderRepository(session, ctx).get(SAML_KIND)

    async def _config(self, ctx: TenantContext) -> SamlConfig:
        row = await self._row(ctx)
        if row is None or not row.config.get("enabled"):
            raise SamlNotConfigured()
        return SamlConfig.of_row(row)
