"""What OIDC, SAML and SCIM share: JIT provisioning, Bulwark sessions, role mappings, and
deactivation that takes effect at once.

Roles a request carries are the user's own roles plus those that the tenant's role mappings give
to the IdP groups the user belongs to (by group name or external id), computed at authentication
time: a SCIM membership change or a new mapping applies to the user's very next request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from audit.pseudonyms import SYSTEM_SUBJECT
from audit.services import AuditLog, AuditOrigin
from auth import apikeys
from auth.errors import InvalidCredentials
from auth.models import Group, User, UserSession
from auth.repositories import (
    ApiKeyRepository,
    GroupRepository,
    IdentityProviderRepository,
    RoleMappingRepository,
    SessionRepository,
    UserRepository,
)
from kernel.audit_events import AuditAction, AuditOutcome, ResourceType
from kernel.db import utcnow
from kernel.tenancy import Role, TenantContext
from residency.registry import RegionRegistry

SsoMethod = Literal["oidc", "saml"]
KNOWN_ROLES = {role.value for role in Role}


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """A user as an IdP asserted them (validated claims or attributes), before provisioning."""

    method: SsoMethod
    subject: str
    email: str
    display_name: str
    given_name: str | None = None
    family_name: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)
    # The IdP left groups out because there were too many (Entra ID's overage marker).
    groups_overage: bool = False


async def effective_roles(
    session: AsyncSession, ctx: TenantContext, user: User, groups: Sequence[Group]
) -> list[str]:
    """The user's own roles plus the roles mapped from their groups' names and external ids."""
    names = [g.name for g in groups] + [g.external_id for g in groups if g.external_id]
    mapped = await RoleMappingRepository(session, ctx).roles_for(names)
    return sorted((set(user.roles) | mapped) & KNOWN_ROLES)


class RoleMappingService:
    def __init__(self, session: AsyncSession, ctx: TenantContext, audit: AuditLog) -> None:
        self.mappings = RoleMappingRepository(session, ctx)
        self.audit = audit

    async def read(self) -> tuple[str, list[tuple[str, str]]]:
        rows = await self.mappings.all()
        return await self.mappings.default_role(), [(r.idp_group, r.role) for r in rows]

    async def replace(self, default_role: str, mappings: Sequence[tuple[str, str]]) -> None:
        await self.mappings.set_default_role(default_role)
        await self.mappings.replace(mappings)
        await self.audit.record(
            AuditAction.ROLE_MAPPINGS_UPDATED,
            resource_type=ResourceType.ROLE_MAPPINGS,
            resource_id=None,
            detail={"default_role": default_role, "mappings": len(set(mappings))},
        )


class Provisioner:
    """Just-in-time provisioning of an SSO identity into the tenant (create or update)."""

    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        self.session = session
        self.ctx = ctx
        self.users = UserRepository(session, ctx)
        self.groups = GroupRepository(session, ctx)

    async def provision(self, identity: SsoIdentity, audit: AuditLog) -> User:
        user = await self.users.get_by_idp_subject(identity.subject)
        if user is None:
            # Link an existing account (SCIM- or admin-created) with the same email, but only
            # one not yet bound to another IdP subject: an identity never takes over an account
            # that a different identity already signs in to.
            user = await self.users.get_by_email(identity.email)
            if user is not None and user.idp_subject not in (None, identity.subject):
                raise InvalidCredentials("This email belongs to another identity.")
        if user is None:
            user = await self._create(identity, audit)
        else:
            if not user.active:
                raise InvalidCredentials("This user is deactivated.")
            self._update(user, identity)
        await self._join_groups(user, identity.groups)
        await self.session.flush()
        return user

    async def _create(self, identity: SsoIdentity, audit: AuditLog) -> User:
        default_role = await RoleMappingRepository(self.session, self.ctx).default_role()
        user = User(
            id=uuid.uuid4(),
            email=identity.email,
            user_name=identity.email,
            display_name=identity.display_name,
            given_name=identity.given_name,
            family_name=identity.family_name,
            idp_subject=identity.subject,
            roles=[default_role],
            active=True,
            source=identity.method,
            profile={},
        )
        try:
            async with self.session.begin_nested():
                await self.users.add(user)
        except IntegrityError:
            raise InvalidCredentials("This identity conflicts with an existing user.") from None
        await audit.record(
            AuditAction.USER_CREATED,
            resource_type=ResourceType.USER,
            resource_id=user.id,
            detail={"roles": user.roles, "source": identity.method},
        )
        return user

    @staticmethod
    def _update(user: User, identity: SsoIdentity) -> None:
        changed = False
        for attribute, value in (
            ("idp_subject", identity.subject),
            ("display_name", identity.display_name),
            ("given_name", identity.given_name),
            ("family_name", identity.family_name),
        ):
            if value and getattr(user, attribute) != value:
                setattr(user, attribute, value)
                changed = True
        if changed:
            user.version += 1

    async def _join_groups(self, user: User, names: Sequence[str]) -> None:
        """Add the user to the groups the IdP asserted (creating missing ones). Removal is
        SCIM's job: an SSO login alone never drops a membership."""
        for name in list(dict.fromkeys(n for n in names if n))[:100]:
            group = await self.groups.get_by_name(name) or await self.groups.get_by_external_id(
                name
            )
            if group is None:
                group = Group(id=uuid.uuid4(), name=name[:200])
                try:
                    async with self.session.begin_nested():
                        await self.groups.add(group)
                except IntegrityError:
                    continue
            if not await self.groups.has_member(group.id, user.id):
                await self.groups.add_member(group.id, user.id)


@dataclass(frozen=True, slots=True)
class IssuedSession:
    row: UserSession
    token: str


class SessionService:
    """Bulwark sessions: ``bws_`` tokens stored hashed with an expiry, revocable server-side."""

    def __init__(
        self, session: AsyncSession, ctx: TenantContext, *, pepper: str, ttl: timedelta
    ) -> None:
        self.sessions = SessionRepository(session, ctx)
        self.ctx = ctx
        self.pepper = pepper
        self.ttl = ttl

    async def issue(self, user: User, method: str) -> IssuedSession:
        session_id, secret = uuid.uuid4(), apikeys.new_secret()
        row = UserSession(
            id=session_id,
            user_id=user.id,
            auth_method=method,
            secret_hash=apikeys.hash_secret(secret, self.pepper),
            expires_at=utcnow() + self.ttl,
        )
        await self.sessions.add(row)
        token = apikeys.format_key(self.ctx.tenant_id, session_id, secret, apikeys.SESSION_PREFIX)
        return IssuedSession(row=row, token=token)

    async def revoke(self, session_id: uuid.UUID) -> bool:
        return await self.sessions.revoke(session_id, utcnow())


async def deactivate_user(
    session: AsyncSession, ctx: TenantContext, user: User, audit: AuditLog
) -> None:
    """Deactivate a user and revoke their sessions and API keys in the same transaction."""
    if not user.active:
        return
    now = utcnow()
    user.active = False
    user.version += 1
    sessions = await SessionRepository(session, ctx).revoke_all_of(user.id, now)
    keys = await ApiKeyRepository(session, ctx).revoke_all_of(user.id, now)
    await audit.record(
        AuditAction.USER_DEACTIVATED,
        resource_type=ResourceType.USER,
        resource_id=user.id,
        detail={"sessions_revoked": sessions, "api_keys_revoked": keys},
    )


async def record_login(
    registry: RegionRegistry,
    ctx: TenantContext,
    *,
    method: SsoMethod,
    outcome: AuditOutcome,
    reason: str,
    request_id: str | None,
    user_id: uuid.UUID | None = None,
) -> None:
    """Record a login attempt in its own transaction, so that a refused login (whose request
    rolls back) still leaves its event, with a reason code and never the asserted values."""
    async with registry.tenant_transaction(ctx) as session:
        await (
            AuditOrigin(SYSTEM_SUBJECT, request_id)
            .log(session, ctx)
            .record(
                AuditAction.SSO_LOGIN,
                resource_type=ResourceType.USER,
                resource_id=user_id,
                detail={"method": method, "reason": reason},
                outcome=outcome,
            )
        )


async def enabled_sign_in_methods(session: AsyncSession, ctx: TenantContext) -> list[SsoMethod]:
    """The SSO methods a tenant has configured and enabled (what its sign-in page offers)."""
    providers = IdentityProviderRepository(session, ctx)
    methods: list[SsoMethod] = []
    kinds: tuple[SsoMethod, ...] = ("oidc", "saml")
    for kind in kinds:
        row = await providers.get(kind)
        if row is not None and bool(row.config.get("enabled")):
            methods.append(kind)
    return methods


_SAFE_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1999}$")


def safe_return_path(value: str | None, default: str = "/v1/me") -> str:
    """Only this deployment's own relative paths: no scheme, host, ``//`` or backslash tricks."""
    if not value or not _SAFE_PATH.match(value) or "\\" in value:
        return default
    return value
