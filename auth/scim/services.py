"""SCIM provisioning: the tenant's IdP creating, updating and removing its users and groups.

Services hold the rules and never commit; the request's unit of work does, together with the
audit events each change appends (actor: the tenant's SCIM client, subject ``scim``). Event
details hold ids, attribute names and counts only, never the values an IdP sent.

A membership or ``active`` change applies to authorization at once: roles are computed from the
user's groups at every request (``auth.sso.effective_roles``), and deactivation revokes the
user's sessions and API keys in the same transaction (``auth.sso.deactivate_user``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from scim2_models import (
    Context,
    PatchOp,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    SearchRequest,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from auth import apikeys
from auth.models import Group, ScimToken, User
from auth.repositories import RoleMappingRepository, ScimTokenRepository
from auth.scim import compat
from auth.scim.errors import (
    ScimInvalidValue,
    ScimPreconditionFailed,
    ScimResourceNotFound,
    ScimTooMany,
    ScimUniqueness,
    from_scim_exception,
    from_validation_error,
)
from auth.scim.filters import column_for, compile_filter, order_clauses
from auth.scim.mapping import (
    GroupFields,
    UserFields,
    group_fields,
    group_resource,
    placeholder_email,
    user_fields,
    user_resource,
)
from auth.scim.repositories import ScimGroupRepository, ScimUserRepository
from auth.scim.resources import (
    DEFAULT_COUNT,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    MAX_RESULTS,
    POLICY,
    ScimGroup,
    ScimUser,
    parse_patch,
    parse_resource,
)
from auth.sso import deactivate_user
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.tenancy import TenantContext

# Filters that SQL cannot answer exactly are evaluated in Python over the tenant's candidate
# rows; beyond this many candidates the request is refused (tooMany) rather than scanned.
MAX_SCAN = 20_000

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class IssuedScimToken:
    row: ScimToken
    token: str


class ScimTokenService:
    """The tenant's SCIM bearer token: one live token, shown once, stored as an HMAC."""

    def __init__(self, tokens: ScimTokenRepository, pepper: str, audit: AuditLog) -> None:
        self.tokens = tokens
        self.pepper = pepper
        self.audit = audit

    async def issue(self) -> IssuedScimToken:
        """A new token; every earlier token of the tenant stops working in the same commit."""
        revoked = await self.tokens.revoke_all(utcnow())
        token_id, secret = uuid.uuid4(), apikeys.new_secret()
        row = ScimToken(
            id=token_id, secret_hash=apikeys.hash_secret(secret, self.pepper), hint=secret[-4:]
        )
        await self.tokens.add(row)
        await self.audit.record(
            AuditAction.SCIM_TOKEN_ISSUED,
            resource_type=ResourceType.SCIM_TOKEN,
            resource_id=token_id,
            detail={"revoked": revoked},
        )
        token = apikeys.format_key(
            self.tokens.ctx.tenant_id, token_id, secret, prefix=apikeys.SCIM_PREFIX
        )
        return IssuedScimToken(row=row, token=token)


@dataclass(frozen=True, slots=True)
class ScimPage:
    total: int
    start_index: int
    resources: list[Any]


def check_version(if_match: str | None, version: int) -> None:
    """``If-Match`` (RFC 7644 §3.14): any listed ETag, weak or strong, or ``*``."""
    if if_match is None:
        return
    for tag in (part.strip() for part in if_match.split(",")):
        if tag == "*" or tag.removeprefix("W/").strip('"') == str(version):
            return
    raise ScimPreconditionFailed()


def not_modified(if_none_match: str | None, version: int) -> bool:
    if if_none_match is None:
        return False
    return any(
        tag == "*" or tag.removeprefix("W/").strip('"') == str(version)
        for tag in (part.strip() for part in if_none_match.split(","))
    )


def page_bounds(request: SearchRequest[Any]) -> tuple[int, int]:
    """(offset, limit): ``startIndex`` is 1-based, ``count`` defaults and is capped."""
    start = request.start_index or 1
    count = DEFAULT_COUNT if request.count is None else min(request.count, MAX_RESULTS)
    return start - 1, count


def returns(parameters: ResponseParameters[Any] | None, attribute: str, schema: str) -> bool:
    """Whether a response with these ``attributes``/``excludedAttributes`` shows an attribute."""
    if parameters is None:
        return True

    def names(paths: Sequence[Any] | None) -> list[str]:
        prefix = f"{schema}:".lower()
        return [str(path).lower().removeprefix(prefix) for path in paths or []]

    wanted = attribute.lower()
    if parameters.attributes:
        return any(
            name == wanted or name.startswith(wanted + ".") for name in names(parameters.attributes)
        )
    return wanted not in names(parameters.excluded_attributes)


def _parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _changed_attributes(before: Any, after: Any) -> set[str]:
    """Top-level attribute names whose value differs (the extension reads "enterprise")."""
    ignored = {"schemas", "id", "meta", "groups", "password", "active"}
    old = before.model_dump(scim_ctx=Context.DEFAULT)
    new = after.model_dump(scim_ctx=Context.DEFAULT)
    changed = {
        key for key in set(old) | set(new) if key not in ignored and old.get(key) != new.get(key)
    }
    return {"enterprise" if key == ENTERPRISE_SCHEMA else key for key in changed}


def _apply_patch(patch: PatchOp[Any], resource: Any) -> None:
    try:
        patch.patch(resource, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from None
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _replace(resource: Any, original: Any) -> None:
    try:
        resource.replace(original)
    except SCIMException as exc:
        raise from_scim_exception(exc) from None


class _Collection(Generic[R]):
    """Querying one resource type: in SQL when the filter and the sort allow it (see
    ``auth.scim.filters``), otherwise over the tenant's candidate rows in Python."""

    model: Any
    repository: ScimUserRepository | ScimGroupRepository

    async def resources(self, rows: Sequence[R], *, full: bool) -> list[Any]:
        raise NotImplementedError

    async def _find(self, where: Any, **page: Any) -> Sequence[R]:
        rows: Sequence[R] = await self.repository.find(where, **page)  # type: ignore[assignment]
        return rows

    async def query(
        self,
        request: SearchRequest[Any],
        scim_filter: ScimFilter[Any] | None,
        *,
        offset: int,
        limit: int | None,
        full: bool,
    ) -> tuple[int, list[Any]]:
        attributes = self.repository.attributes
        compiled = compile_filter(scim_filter, attributes) if scim_filter is not None else None
        where = compiled.condition if compiled is not None else None
        binding = request.sort_binding(self.model) if request.sort_by is not None else None
        sort_column = column_for(binding, attributes) if binding is not None else None
        default_order = self.repository.default_order
        if (compiled is None or compiled.exact) and (binding is None or sort_column is not None):
            total = await self.repository.count(where)
            if limit == 0 or offset >= total:
                return total, []
            order = default_order
            if binding is not None and sort_column is not None:
                order = order_clauses(
                    sort_column,
                    case_exact=binding.case_exact,
                    descending=request.sort_order == SearchRequest.SortOrder.descending,
                    tiebreak=default_order,
                )
            rows = await self._find(where, order_by=order, offset=offset, limit=limit)
            return total, await self.resources(rows, full=full)
        rows = await self._find(where, order_by=default_order, limit=MAX_SCAN + 1)
        if len(rows) > MAX_SCAN:
            raise ScimTooMany()
        candidates = await self.resources(rows, full=True)
        if scim_filter is not None:
            candidates = [resource for resource in candidates if scim_filter.match(resource)]
        if request.sort_by is not None:
            candidates = request.sort(candidates)
        end = None if limit is None else offset + limit
        return len(candidates), candidates[offset:end]

    async def search(
        self, request: SearchRequest[Any], parameters: ResponseParameters[Any] | None
    ) -> ScimPage:
        offset, limit = page_bounds(request)
        total, resources = await self.query(
            request, request.filter, offset=offset, limit=limit, full=self.full(parameters)
        )
        return ScimPage(total=total, start_index=offset + 1, resources=resources)

    def full(self, parameters: ResponseParameters[Any] | None) -> bool:
        return True


class ScimUserService(_Collection[User]):
    model = ScimUser

    def __init__(
        self, session: AsyncSession, ctx: TenantContext, audit: AuditLog, base_url: str
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit
        self.base_url = base_url
        self.users = self.repository = ScimUserRepository(session, ctx)
        self.groups = ScimGroupRepository(session, ctx)

    async def resources(self, rows: Sequence[User], *, full: bool) -> list[Any]:
        groups = await self.users.groups_of([row.id for row in rows])
        return [user_resource(row, groups[row.id], self.base_url) for row in rows]

    async def resource(self, user: User) -> ScimUser:
        resource: ScimUser = (await self.resources([user], full=True))[0]
        return resource

    async def load(self, user_id: str) -> User:
        parsed = _parse_id(user_id)
        user = await self.users.get(parsed) if parsed is not None else None
        if user is None:
            raise ScimResourceNotFound("user")
        return user

    async def read(self, user_id: str) -> tuple[User, ScimUser]:
        user = await self.load(user_id)
        return user, await self.resource(user)

    async def create(self, payload: Any) -> ScimUser:
        resource = parse_resource(
            ScimUser, compat.user_payload(payload, self.base_url), Context.RESOURCE_CREATION_REQUEST
        )
        fields = user_fields(resource)
        user = User(
            id=uuid.uuid4(),
            roles=[await RoleMappingRepository(self.session, self.ctx).default_role()],
            source="scim",
            version=1,
            idp_subject=None,
        )
        await self._check_unique(fields, user.id, exclude=None)
        self._assign(user, fields)
        # Created without ``active``: active, as IdPs that omit it mean.
        user.active = fields.active if fields.active is not None else True
        await self._flush(self.users.add(user))
        await self.audit.record(
            AuditAction.USER_CREATED,
            resource_type=ResourceType.USER,
            resource_id=user.id,
            detail={"roles": user.roles, "source": "scim", "active": user.active},
        )
        return user_resource(user, [], self.base_url)

    async def replace(self, user_id: str, payload: Any, if_match: str | None) -> ScimUser:
        """PUT: the body replaces every attribute; an omitted ``active`` keeps its state."""
        user = await self.load(user_id)
        check_version(if_match, user.version)
        original = await self.resource(user)
        resource = parse_resource(
            ScimUser,
            compat.user_payload(payload, self.base_url),
            Context.RESOURCE_REPLACEMENT_REQUEST,
        )
        _replace(resource, original)
        await self._update(user, original, resource, active_removable=False)
        return await self.resource(user)

    async def patch(self, user_id: str, payload: Any, if_match: str | None) -> ScimUser:
        user = await self.load(user_id)
        check_version(if_match, user.version)
        patch = parse_patch(
            ScimUser, compat.patch_payload(payload, resource="User", base_url=self.base_url)
        )
        resource = await self.resource(user)
        before = resource.model_copy(deep=True)
        _apply_patch(patch, resource)
        await self._update(user, before, resource, active_removable=True)
        return await self.resource(user)

    async def delete(self, user_id: str, if_match: str | None) -> None:
        """Deactivate (revoking sessions and API keys, audited), then delete the row."""
        user = await self.load(user_id)
        check_version(if_match, user.version)
        group_ids = await self.users.group_ids_of(user.id)
        await deactivate_user(self.session, self.ctx, user, self.audit)
        await self.groups.touch(group_ids)
        await self.users.remove(user)
        await self.audit.record(
            AuditAction.USER_DELETED,
            resource_type=ResourceType.USER,
            resource_id=user.id,
            detail={"source": "scim", "groups_left": len(group_ids)},
        )

    async def _update(
        self, user: User, before: ScimUser, after: ScimUser, *, active_removable: bool
    ) -> None:
        changed = _changed_attributes(before, after)
        fields = user_fields(after)
        if changed:
            await self._check_unique(fields, user.id, exclude=user.id)
            self._assign(user, fields)
        unassigned = "active" in (user.profile or {}) and user.profile["active"] is None
        deactivate = False
        if after.active is None:
            if active_removable and before.active is not None:
                # Removing ``active`` fails closed: the user is deactivated.
                unassigned, deactivate = True, user.active
                changed.add("active")
        else:
            if unassigned:
                unassigned = False
                changed.add("active")
            if after.active and not user.active:
                user.active = True
                changed.add("active")
            elif not after.active and user.active:
                deactivate = True
        profile = {k: v for k, v in dict(user.profile or {}).items() if k != "active"}
        if unassigned:
            profile["active"] = None
        if profile != user.profile:
            user.profile = profile
        if changed:
            user.version += 1
        await self._flush(None)
        if deactivate:
            await deactivate_user(self.session, self.ctx, user, self.audit)
            await self.session.flush()
        if changed:
            await self.audit.record(
                AuditAction.USER_UPDATED,
                resource_type=ResourceType.USER,
                resource_id=user.id,
                detail={"attributes": sorted(changed), "active": user.active},
            )

    @staticmethod
    def _assign(user: User, fields: UserFields) -> None:
        user.user_name = fields.user_name
        user.external_id = fields.external_id
        user.given_name = fields.given_name
        user.family_name = fields.family_name
        user.display_name = fields.display_name
        user.email = fields.email or placeholder_email(user.id)
        marker = {"active": None} if (user.profile or {}).get("active", 0) is None else {}
        user.profile = {**fields.profile, **marker}

    async def _check_unique(
        self, fields: UserFields, user_id: uuid.UUID, *, exclude: uuid.UUID | None
    ) -> None:
        if await self.users.user_name_taken(fields.user_name, exclude=exclude):
            raise ScimUniqueness("userName")
        email = fields.email or placeholder_email(user_id)
        if await self.users.email_taken(email, exclude=exclude):
            raise ScimUniqueness("email")
        if fields.external_id is not None and await self.users.external_id_taken(
            fields.external_id, exclude=exclude
        ):
            raise ScimUniqueness("externalId")

    async def _flush(self, pending: Any) -> None:
        """Flush in a savepoint: a concurrent duplicate is a 409, not a broken transaction."""
        try:
            async with self.session.begin_nested():
                if pending is not None:
                    await pending
                else:
                    await self.session.flush()
        except IntegrityError:
            raise ScimUniqueness("userName, email or externalId") from None


class ScimGroupService(_Collection[Group]):
    model = ScimGroup

    def __init__(
        self, session: AsyncSession, ctx: TenantContext, audit: AuditLog, base_url: str
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit
        self.base_url = base_url
        self.groups = self.repository = ScimGroupRepository(session, ctx)
        self.users = ScimUserRepository(session, ctx)

    def full(self, parameters: ResponseParameters[Any] | None) -> bool:
        # Members are only read from the database when the response shows them.
        return returns(parameters, "members", GROUP_SCHEMA)

    async def resources(self, rows: Sequence[Group], *, full: bool) -> list[Any]:
        members = await self.groups.member_ids([row.id for row in rows]) if full else {}
        return [
            group_resource(row, members[row.id] if full else None, self.base_url) for row in rows
        ]

    async def load(self, group_id: str) -> Group:
        parsed = _parse_id(group_id)
        group = await self.groups.get(parsed) if parsed is not None else None
        if group is None:
            raise ScimResourceNotFound("group")
        return group

    async def read(
        self, group_id: str, parameters: ResponseParameters[Any] | None
    ) -> tuple[Group, ScimGroup]:
        group = await self.load(group_id)
        return group, (await self.resources([group], full=self.full(parameters)))[0]

    async def create(self, payload: Any) -> ScimGroup:
        resource = parse_resource(
            ScimGroup, compat.group_payload(payload), Context.RESOURCE_CREATION_REQUEST
        )
        fields = group_fields(resource)
        await self._check_unique(fields, exclude=None)
        await self._check_members(fields.member_ids)
        group = Group(id=uuid.uuid4(), name=fields.name, external_id=fields.external_id, version=1)
        await self._flush(self.groups.add(group))
        await self.audit.record(
            AuditAction.GROUP_CREATED,
            resource_type=ResourceType.GROUP,
            resource_id=group.id,
            detail={"source": "scim", "members": len(fields.member_ids)},
        )
        await self._change_members(group, added=fields.member_ids, removed=[])
        return group_resource(group, fields.member_ids, self.base_url)

    async def replace(self, group_id: str, payload: Any, if_match: str | None) -> ScimGroup:
        """PUT (Okta sends whole groups): name, externalId and the member list replaced."""
        group = await self.load(group_id)
        check_version(if_match, group.version)
        original = await self._full(group)
        resource = parse_resource(
            ScimGroup, compat.group_payload(payload), Context.RESOURCE_REPLACEMENT_REQUEST
        )
        _replace(resource, original)
        await self._update(group, original, resource)
        return await self._full(group)

    async def patch(self, group_id: str, payload: Any, if_match: str | None) -> ScimGroup:
        group = await self.load(group_id)
        check_version(if_match, group.version)
        patch = parse_patch(
            ScimGroup, compat.patch_payload(payload, resource="Group", base_url=self.base_url)
        )
        resource = await self._full(group)
        before = resource.model_copy(deep=True)
        _apply_patch(patch, resource)
        await self._update(group, before, resource)
        return await self._full(group)

    async def delete(self, group_id: str, if_match: str | None) -> None:
        group = await self.load(group_id)
        check_version(if_match, group.version)
        members = (await self.groups.member_ids([group.id]))[group.id]
        await self.users.touch(members)
        await self.groups.remove(group)
        await self.audit.record(
            AuditAction.GROUP_DELETED,
            resource_type=ResourceType.GROUP,
            resource_id=group.id,
            detail={"source": "scim", "members_removed": len(members)},
        )

    async def _full(self, group: Group) -> ScimGroup:
        resource: ScimGroup = (await self.resources([group], full=True))[0]
        return resource

    async def _update(self, group: Group, before: ScimGroup, after: ScimGroup) -> None:
        fields = group_fields(after)
        changed = _changed_attributes(before, after) - {"members"}
        current = (await self.groups.member_ids([group.id]))[group.id]
        if changed:
            await self._check_unique(fields, exclude=group.id)
            if group.name != fields.name:
                # The members' ``groups`` show the group's name: their representation changed.
                await self.users.touch(current)
            group.name = fields.name
            group.external_id = fields.external_id
        wanted = set(fields.member_ids)
        added = [user_id for user_id in fields.member_ids if user_id not in set(current)]
        removed = [user_id for user_id in current if user_id not in wanted]
        await self._check_members(added)
        if changed or added or removed:
            group.version += 1
        await self._flush(None)
        if changed:
            await self.audit.record(
                AuditAction.GROUP_UPDATED,
                resource_type=ResourceType.GROUP,
                resource_id=group.id,
                detail={"attributes": sorted(changed)},
            )
        await self._change_members(group, added=added, removed=removed)

    async def _change_members(
        self, group: Group, *, added: Sequence[uuid.UUID], removed: Sequence[uuid.UUID]
    ) -> None:
        """Memberships (and so the roles mapped from this group) change for the next request."""
        if removed:
            await self.groups.remove_members(group.id, removed)
        if added:
            await self.groups.add_members(group.id, added)
        await self.users.touch([*added, *removed])
        for action, user_ids in (
            (AuditAction.GROUP_MEMBER_REMOVED, removed),
            (AuditAction.GROUP_MEMBER_ADDED, added),
        ):
            for user_id in user_ids:
                await self.audit.record(
                    action,
                    resource_type=ResourceType.GROUP,
                    resource_id=group.id,
                    detail={"user_id": user_id, "source": "scim"},
                )

    async def _check_unique(self, fields: GroupFields, *, exclude: uuid.UUID | None) -> None:
        if await self.groups.name_taken(fields.name, exclude=exclude):
            raise ScimUniqueness("displayName")
        if fields.external_id is not None and await self.groups.external_id_taken(
            fields.external_id, exclude=exclude
        ):
            raise ScimUniqueness("externalId")

    async def _check_members(self, user_ids: Sequence[uuid.UUID]) -> None:
        if not user_ids:
            return
        if len(await self.users.existing(user_ids)) != len(set(user_ids)):
            # The same answer for an unknown id and for a user of another tenant.
            raise ScimInvalidValue("A group member is not a user of this tenant.")

    async def _flush(self, pending: Any) -> None:
        try:
            async with self.session.begin_nested():
                if pending is not None:
                    await pending
                else:
                    await self.session.flush()
        except IntegrityError:
            raise ScimUniqueness("displayName or externalId") from None


class ScimSearchService:
    """``POST /.search`` at the service root: users and groups together (RFC 7644 §3.4.3)."""

    def __init__(self, users: ScimUserService, groups: ScimGroupService) -> None:
        self.collections: list[_Collection[Any]] = [users, groups]

    async def search(self, request: SearchRequest[Any]) -> ScimPage:
        offset, limit = page_bounds(request)
        total, resources = 0, list[Any]()
        if request.sort_by is None:
            # Users, then groups: each answers its own slice of the page.
            for collection in self.collections:
                skip = max(0, offset - total)
                count, page = await collection.query(
                    request,
                    self._bound(collection, request),
                    offset=skip,
                    limit=limit - len(resources),
                    full=True,
                )
                total += count
                resources += page
        else:
            merged: list[Any] = []
            for collection in self.collections:
                count, page = await collection.query(
                    request,
                    self._bound(collection, request),
                    offset=0,
                    limit=offset + limit,
                    full=True,
                )
                total += count
                merged += page
            resources = request.sort(merged)[offset : offset + limit]
        return ScimPage(total=total, start_index=offset + 1, resources=resources)

    @staticmethod
    def _bound(collection: _Collection[Any], request: SearchRequest[Any]) -> ScimFilter[Any] | None:
        """The filter bound to one resource type: attributes it lacks evaluate to false."""
        if request.filter is None:
            return None
        try:
            bound: ScimFilter[Any] = ScimFilter.__class_getitem__(collection.model)(
                str(request.filter)
            )
        except SCIMException as exc:
            raise from_scim_exception(exc) from None
        return bound
