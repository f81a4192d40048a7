"""Identity services: users, groups, API keys, and turning a credential into a principal.

Services hold the rules and never commit; the request's unit of work does. Every change appends
its audit event to the tenant's chain in the same session, so the two commit or roll back
together. Everything a ``TenantContext`` carries (roles, groups) is read from the tenant's own
region at authentication time, so a role or membership change applies to the very next request.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog, AuditOrigin
from auth import apikeys
from auth.context import system_context, user_context, with_epoch
from auth.errors import (
    ApiKeyNotFound,
    EmailTaken,
    GroupNameTaken,
    GroupNotFound,
    InvalidCredentials,
    MembershipNotFound,
    UserNotFound,
)
from auth.models import ApiKey, Group, User, UserSession
from auth.principals import Entry, PrincipalCache, route_key
from auth.repositories import (
    AUTH_EPOCH_QUERY,
    ApiKeyRepository,
    GroupRepository,
    SessionRepository,
    UserRepository,
)
from auth.sso import deactivate_user, effective_roles
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.tenancy import AuthMethod, OperatorPrincipal, Principal, TenantContext, TenantRoute
from residency.database import Database
from residency.registry import RegionRegistry
from tenants.errors import TenantDeleted, TenantNotFound, TenantSuspended
from tenants.repositories import ROUTE_QUERY, TenantRepository
from tenants.schemas import TenantStatus

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalize_email(email: str) -> str:
    # ASCII-only folding: Unicode lower() can lengthen a string past the column's limit.
    return email.translate(_ASCII_LOWER)


class UserService:
    def __init__(self, users: UserRepository, audit: AuditLog) -> None:
        self.users = users
        self.audit = audit

    async def create(self, *, email: str, display_name: str, roles: Sequence[str]) -> User:
        email = normalize_email(email)
        if await self.users.get_by_email(email) is not None:
            raise EmailTaken()
        user = User(
            id=uuid.uuid4(),
            email=email,
            user_name=email,
            display_name=display_name,
            roles=sorted(set(roles)),
            active=True,
        )
        try:
            async with self.users.session.begin_nested():
                await self.users.add(user)
        except IntegrityError:
            raise EmailTaken() from None
        await self.audit.record(
            AuditAction.USER_CREATED,
            resource_type=ResourceType.USER,
            resource_id=user.id,
            detail={"roles": user.roles},
        )
        return user

    async def get(self, user_id: uuid.UUID) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def get_by_email(self, email: str) -> User | None:
        return await self.users.get_by_email(normalize_email(email))

    async def update(
        self,
        user_id: uuid.UUID,
        *,
        display_name: str | None,
        roles: Sequence[str] | None,
        active: bool | None,
        clearance: int | None = None,
        attributes: dict[str, list[str]] | None = None,
    ) -> User:
        """Change a user; deactivating revokes their sessions and API keys in this transaction."""
        user = await self.get(user_id)
        changed: list[str] = []
        if display_name is not None and display_name != user.display_name:
            user.display_name = display_name
            changed.append("display_name")
        if roles is not None and sorted(set(roles)) != sorted(user.roles):
            user.roles = sorted(set(roles))
            changed.append("roles")
        if clearance is not None and clearance != user.clearance:
            user.clearance = clearance
            changed.append("clearance")
        if attributes is not None:
            normalized = {k: sorted(set(v)) for k, v in attributes.items() if v}
            if normalized != (user.attributes or {}):
                user.attributes = normalized
                changed.append("attributes")
        if active is True and not user.active:
            user.active = True
            changed.append("active")
        if changed:
            user.version += 1
            await self.audit.record(
                AuditAction.USER_UPDATED,
                resource_type=ResourceType.USER,
                resource_id=user.id,
                detail={"changed": changed, "roles": user.roles},
            )
        if active is False:
            await deactivate_user(self.users.session, self.users.ctx, user, self.audit)
        await self.users.session.flush()
        return user

    async def page(self, *, limit: int, offset: int) -> Sequence[User]:
        return await self.users.page(limit=limit, offset=offset)

    async def group_ids(self, users: Sequence[User]) -> dict[uuid.UUID, list[uuid.UUID]]:
        return await self.users.group_ids_of_many([user.id for user in users])


class GroupService:
    def __init__(self, groups: GroupRepository, users: UserRepository, audit: AuditLog) -> None:
        self.groups = groups
        self.users = users
        self.audit = audit

    async def create(self, name: str) -> Group:
        if await self.groups.get_by_name(name) is not None:
            raise GroupNameTaken()
        group = Group(id=uuid.uuid4(), name=name)
        try:
            async with self.groups.session.begin_nested():
                await self.groups.add(group)
        except IntegrityError:
            raise GroupNameTaken() from None
        # The name is tenant content, not an id: the event carries the group id only.
        await self.audit.record(
            AuditAction.GROUP_CREATED, resource_type=ResourceType.GROUP, resource_id=group.id
        )
        return group

    async def get(self, group_id: uuid.UUID) -> Group:
        group = await self.groups.get(group_id)
        if group is None:
            raise GroupNotFound()
        return group

    async def get_by_name(self, name: str) -> Group | None:
        return await self.groups.get_by_name(name)

    async def page(self, *, limit: int, offset: int) -> Sequence[Group]:
        return await self.groups.page(limit=limit, offset=offset)

    async def member_ids(self, groups: Sequence[Group]) -> dict[uuid.UUID, list[uuid.UUID]]:
        return await self.groups.member_ids([group.id for group in groups])

    async def add_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> Group:
        """Idempotent: adding an existing member changes nothing (and records nothing)."""
        group = await self.get(group_id)
        if await self.users.get(user_id) is None:
            raise UserNotFound()
        if not await self.groups.has_member(group_id, user_id):
            await self.groups.add_member(group_id, user_id)
            await self.audit.record(
                AuditAction.GROUP_MEMBER_ADDED,
                resource_type=ResourceType.GROUP,
                resource_id=group_id,
                detail={"user_id": user_id},
            )
        return group

    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.get(group_id)
        if not await self.groups.remove_member(group_id, user_id):
            raise MembershipNotFound()
        await self.audit.record(
            AuditAction.GROUP_MEMBER_REMOVED,
            resource_type=ResourceType.GROUP,
            resource_id=group_id,
            detail={"user_id": user_id},
        )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    row: ApiKey
    secret: str


class ApiKeyService:
    def __init__(
        self, keys: ApiKeyRepository, users: UserRepository, pepper: str, audit: AuditLog
    ) -> None:
        self.keys = keys
        self.users = users
        self.pepper = pepper
        self.audit = audit

    async def issue(self, *, user_id: uuid.UUID, name: str) -> IssuedKey:
        if await self.users.get(user_id) is None:
            raise UserNotFound()
        key_id = uuid.uuid4()
        secret = apikeys.new_secret()
        row = ApiKey(
            id=key_id,
            user_id=user_id,
            name=name,
            secret_hash=apikeys.hash_secret(secret, self.pepper),
            hint=secret[-4:],
        )
        await self.keys.add(row)
        # Never the secret, its hint or the key's free-text name: ids only.
        await self.audit.record(
            AuditAction.API_KEY_ISSUED,
            resource_type=ResourceType.API_KEY,
            resource_id=key_id,
            detail={"user_id": user_id},
        )
        return IssuedKey(
            row=row, secret=apikeys.format_key(self.keys.ctx.tenant_id, key_id, secret)
        )

    async def verify(self, raw_key: str) -> bool:
        """Whether a full key string is a live key of this tenant (used by the demo seeder)."""
        parsed = apikeys.parse_key(raw_key)
        if parsed is None or parsed.tenant_id != self.keys.ctx.tenant_id:
            return False
        row = await self.keys.get(parsed.key_id)
        return (
            row is not None
            and row.revoked_at is None
            and apikeys.verify_secret(parsed.secret, row.secret_hash, self.pepper)
        )

    async def page(self, *, limit: int, offset: int) -> Sequence[ApiKey]:
        return await self.keys.page(limit=limit, offset=offset)

    async def revoke(self, key_id: uuid.UUID) -> None:
        if not await self.keys.revoke(key_id, utcnow()):
            raise ApiKeyNotFound()
        await self.audit.record(
            AuditAction.API_KEY_REVOKED, resource_type=ResourceType.API_KEY, resource_id=key_id
        )


IdpBearer = Callable[[TenantRoute, str], Awaitable[TenantContext]]


class AuthenticationService:
    """Turns a credential into a principal, or refuses it (401/403).

    Accepted: ``Authorization: Bearer`` with an API key (``bwk_``), a Bulwark session (``bws_``,
    also read from the ``bulwark_session`` cookie on safe methods), the operator token, or — with
    ``X-Bulwark-Tenant: <slug>`` — an access token from that tenant's own IdP. Keys and sessions
    name their tenant; the tenant's control-plane record gives its status and region, and the
    credential, its user, roles and groups are then read from that region only, in a transaction
    scoped to that tenant.
    """

    def __init__(
        self,
        control: Database,
        registry: RegionRegistry,
        *,
        operator_token: str,
        pepper: str,
        principal_cache_size: int = 10_000,
    ) -> None:
        self.control = control
        self.registry = registry
        self.operator_token = operator_token
        self.pepper = pepper
        self.idp_bearer: IdpBearer | None = None
        self.principals = PrincipalCache(principal_cache_size)
        # A tenant's region never changes (it is pinned at creation), so it may be remembered:
        # it lets the control-plane read and the epoch read run side by side.
        self._regions: dict[uuid.UUID, str] = {}

    async def authenticate(
        self,
        authorization: str | None,
        *,
        session_cookie: str | None = None,
        tenant_hint: str | None = None,
    ) -> Principal:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if not authorization and session_cookie:
            scheme, credential = "bearer", session_cookie
        if scheme.lower() != "bearer" or not credential:
            raise InvalidCredentials("Send 'Authorization: Bearer <API key or operator token>'.")
        if credential.startswith(apikeys.PREFIX):
            return await self._authenticate_secret(credential, apikeys.PREFIX)
        if credential.startswith(apikeys.SESSION_PREFIX):
            return await self._authenticate_secret(credential, apikeys.SESSION_PREFIX)
        if hmac.compare_digest(credential.encode(), self.operator_token.encode()):
            return OperatorPrincipal()
        if tenant_hint and credential.count(".") == 2 and self.idp_bearer is not None:
            route = await self.tenant_route_by_slug(tenant_hint)
            if route is None:
                raise InvalidCredentials()
            self.check_status(route)
            return await self.idp_bearer(route, credential)
        raise InvalidCredentials()

    async def tenant_route(self, tenant_id: uuid.UUID) -> TenantRoute | None:
        row = await self.control.read_row(ROUTE_QUERY, {"tenant_id": tenant_id})
        if row is None:
            return None
        tenant_id, slug, region, status, deleted_at = row
        self._regions[tenant_id] = region
        return TenantRoute(tenant_id, slug, region, status, deleted=deleted_at is not None)

    async def _epoch(self, region: str, tenant_id: uuid.UUID) -> int:
        database = self.registry.region(region).database
        row = await database.read_row(AUTH_EPOCH_QUERY, {"tenant_id": tenant_id})
        return int(row[0]) if row is not None else 0

    async def _route_and_epoch(self, tenant_id: uuid.UUID) -> tuple[TenantRoute | None, int]:
        """The tenant's control-plane record and its identity epoch, both read for this request
        (concurrently once the tenant's region is known)."""
        region = self._regions.get(tenant_id)
        if region is None:
            route = await self.tenant_route(tenant_id)
            if route is None:
                return None, 0
            return route, await self._epoch(route.region, tenant_id)
        if self.control.reads_inline and self.registry.region(region).database.reads_inline:
            return await self.tenant_route(tenant_id), await self._epoch(region, tenant_id)
        route, epoch = await asyncio.gather(
            self.tenant_route(tenant_id), self._epoch(region, tenant_id)
        )
        return route, epoch

    async def tenant_route_by_slug(self, slug: str) -> TenantRoute | None:
        async with self.control.transaction(None, read_only=True) as session:
            tenant = await TenantRepository(session).get_by_slug(slug)
            return TenantRoute.of(tenant) if tenant is not None else None

    @staticmethod
    def check_status(route: TenantRoute) -> None:
        if route.deleted:
            raise TenantDeleted()
        if route.status != TenantStatus.ACTIVE.value:
            raise TenantSuspended()

    async def _authenticate_secret(self, raw: str, prefix: str) -> TenantContext:
        parsed = apikeys.parse_key(raw, prefix)
        if parsed is None:
            raise InvalidCredentials()
        route, epoch = await self._route_and_epoch(parsed.tenant_id)
        if route is None:
            raise InvalidCredentials()
        method: AuthMethod = "session" if prefix == apikeys.SESSION_PREFIX else "api_key"
        now = utcnow()
        cached = self.principals.get(method, parsed.key_id)
        if cached is not None and cached.serves(parsed.secret, self.pepper, route, epoch, now):
            self.check_status(route)
            return cached.ctx
        lookup = system_context(route)
        async with self.registry.tenant_transaction(lookup, read_only=True) as session:
            row: ApiKey | UserSession | None
            expires_at = None
            if method == "session":
                row = await SessionRepository(session, lookup).get(parsed.key_id)
                if row is not None and row.expires_at <= now:
                    row = None
                expires_at = row.expires_at if row is not None else None
            else:
                row = await ApiKeyRepository(session, lookup).get(parsed.key_id)
            if (
                row is None
                or row.revoked_at is not None
                or not apikeys.verify_secret(parsed.secret, row.secret_hash, self.pepper)
            ):
                raise InvalidCredentials()
            ctx = await self.user_principal(session, lookup, route, row.user_id, method, row.id)
        ctx = with_epoch(ctx, epoch)
        # Filed under the epoch read before the build (``auth.principals``).
        self.principals.put(
            method, parsed.key_id, Entry(row.secret_hash, route_key(route), epoch, expires_at, ctx)
        )
        # Checked after the credential so that a tenant's status is only told to its own users.
        self.check_status(route)
        return ctx

    async def user_principal(
        self,
        session: AsyncSession,
        lookup: TenantContext,
        route: TenantRoute,
        user_id: uuid.UUID,
        method: AuthMethod,
        credential_id: uuid.UUID | None,
    ) -> TenantContext:
        """The context of an active user: their roles (own + mapped from groups) and groups."""
        user = await UserRepository(session, lookup).get(user_id)
        if user is None or not user.active:
            raise InvalidCredentials()
        groups = await GroupRepository(session, lookup).of_user(user.id)
        return user_context(
            route,
            user_id=user.id,
            roles=await effective_roles(session, lookup, user, groups),
            group_ids=[g.id for g in groups],
            auth_method=method,
            credential_id=credential_id,
            clearance=user.clearance,
            attributes=user.attributes,
        )


class TenantAdminBootstrap:
    """The operator's one way into a tenant: create its first tenant admin and an API key.

    It owns its unit of work in the tenant's region (the operator's request otherwise touches only
    the control plane) and acts through a system context scoped to that one tenant; its audit
    events (user created, key issued, admin bootstrapped) are appended in that same unit of work,
    with ``origin`` (the operator) as their actor.
    """

    def __init__(self, authenticator: AuthenticationService, origin: AuditOrigin) -> None:
        self.authenticator = authenticator
        self.origin = origin

    async def run(
        self, tenant_id: uuid.UUID, *, email: str, display_name: str
    ) -> tuple[User, IssuedKey]:
        route = await self.authenticator.tenant_route(tenant_id)
        if route is None:
            raise TenantNotFound()
        ctx = system_context(route)
        async with self.authenticator.registry.tenant_transaction(ctx) as session:
            audit = self.origin.log(session, ctx)
            users = UserRepository(session, ctx)
            user = await UserService(users, audit).create(
                email=email, display_name=display_name, roles=["tenant_admin"]
            )
            keys = ApiKeyService(
                ApiKeyRepository(session, ctx), users, self.authenticator.pepper, audit
            )
            issued = await keys.issue(user_id=user.id, name="bootstrap admin key")
            await audit.record(
                AuditAction.TENANT_ADMIN_BOOTSTRAPPED,
                resource_type=ResourceType.USER,
                resource_id=user.id,
                detail={"api_key_id": issued.row.id},
            )
        return user, issued
