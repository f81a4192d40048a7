"""Tenant-admin identity API (users, groups, API keys) and ``/v1/me``."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from auth.errors import NotASession
from auth.middleware import ACCEPT_SESSION_COOKIE, SESSION_COOKIE
from auth.models import ApiKey, Group, User
from auth.repositories import GroupRepository, UserRepository
from auth.schemas import (
    AdminBootstrap,
    AdminBootstrapped,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    GroupCreate,
    GroupPage,
    GroupRead,
    MeRead,
    MeTenant,
    MeUser,
    RoleMappingItem,
    RoleMappings,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from auth.services import (
    ApiKeyService,
    GroupService,
    IssuedKey,
    TenantAdminBootstrap,
    UserService,
)
from auth.sso import RoleMappingService, SessionService
from kernel.api import SECURED, SESSION_SECURED, Limit, Offset, next_offset, problem_responses
from kernel.audit_events import AuditAction, ResourceType
from kernel.guards import requires_operator, requires_role, requires_tenant
from kernel.tenancy import Role, TenantContext


def provide_user_service(
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> UserService:
    return UserService(UserRepository(db, ctx), audit)


def provide_group_service(
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> GroupService:
    return GroupService(GroupRepository(db, ctx), UserRepository(db, ctx), audit)


def user_read(user: User, group_ids: list[uuid.UUID]) -> UserRead:
    return UserRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        roles=[Role(r) for r in user.roles],
        active=user.active,
        clearance=user.clearance,
        attributes=user.attributes or {},
        group_ids=group_ids,
        created_at=user.created_at,
    )


def group_read(group: Group, member_ids: list[uuid.UUID]) -> GroupRead:
    return GroupRead(
        id=group.id, name=group.name, member_ids=member_ids, created_at=group.created_at
    )


def api_key_read(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        user_id=key.user_id,
        name=key.name,
        hint=key.hint,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def api_key_created(issued: IssuedKey) -> ApiKeyCreated:
    row = issued.row
    return ApiKeyCreated(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        hint=row.hint,
        created_at=row.created_at,
        key=issued.secret,
    )


_ADMIN = [requires_role(Role.TENANT_ADMIN)]


class AdminUserController(Controller):
    path = "/v1/admin/users"
    tags = ["tenant admin"]
    security = SECURED
    guards = _ADMIN
    dependencies = {"users": Provide(provide_user_service, sync_to_thread=False)}

    @post("/", responses=problem_responses(409), summary="Create a user")
    async def create_user(
        self, users: NamedDependency[UserService], data: JSONBody[UserCreate]
    ) -> UserRead:
        user = await users.create(
            email=data.email,
            display_name=data.display_name,
            roles=[role.value for role in data.roles],
        )
        return user_read(user, [])

    @get("/", responses=problem_responses(), summary="List users")
    async def list_users(
        self, users: NamedDependency[UserService], limit: Limit = 100, offset: Offset = 0
    ) -> UserPage:
        rows = await users.page(limit=limit, offset=offset)
        groups = await users.group_ids(rows)
        return UserPage(
            items=[user_read(u, groups[u.id]) for u in rows],
            next_offset=next_offset(rows, limit=limit, offset=offset),
        )

    @patch(
        "/{user_id:uuid}",
        responses=problem_responses(404, 422),
        summary="Change a user's name, roles or active flag (deactivation revokes access)",
    )
    async def update_user(
        self,
        users: NamedDependency[UserService],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserUpdate],
    ) -> UserRead:
        user = await users.update(
            user_id,
            display_name=data.display_name,
            roles=[r.value for r in data.roles] if data.roles is not None else None,
            active=data.active,
            clearance=data.clearance,
            attributes=data.attributes,
        )
        return user_read(user, (await users.group_ids([user]))[user.id])

    @get("/{user_id:uuid}", responses=problem_responses(404), summary="Read a user")
    async def get_user(
        self, users: NamedDependency[UserService], user_id: FromPath[uuid.UUID]
    ) -> UserRead:
        user = await users.get(user_id)
        return user_read(user, (await users.group_ids([user]))[user.id])


class AdminGroupController(Controller):
    path = "/v1/admin/groups"
    tags = ["tenant admin"]
    security = SECURED
    guards = _ADMIN
    dependencies = {"groups": Provide(provide_group_service, sync_to_thread=False)}

    @post("/", responses=problem_responses(409), summary="Create a group")
    async def create_group(
        self, groups: NamedDependency[GroupService], data: JSONBody[GroupCreate]
    ) -> GroupRead:
        return group_read(await groups.create(data.name), [])

    @get("/", responses=problem_responses(), summary="List groups")
    async def list_groups(
        self, groups: NamedDependency[GroupService], limit: Limit = 100, offset: Offset = 0
    ) -> GroupPage:
        rows = await groups.page(limit=limit, offset=offset)
        members = await groups.member_ids(rows)
        return GroupPage(
            items=[group_read(g, members[g.id]) for g in rows],
            next_offset=next_offset(rows, limit=limit, offset=offset),
        )

    @get("/{group_id:uuid}", responses=problem_responses(404), summary="Read a group")
    async def get_group(
        self, groups: NamedDependency[GroupService], group_id: FromPath[uuid.UUID]
    ) -> GroupRead:
        group = await groups.get(group_id)
        return group_read(group, (await groups.member_ids([group]))[group.id])

    @put(
        "/{group_id:uuid}/members/{user_id:uuid}",
        status_code=204,
        responses=problem_responses(404),
        summary="Add a user to a group (idempotent)",
    )
    async def add_member(
        self,
        groups: NamedDependency[GroupService],
        group_id: FromPath[uuid.UUID],
        user_id: FromPath[uuid.UUID],
    ) -> None:
        await groups.add_member(group_id, user_id)

    @delete(
        "/{group_id:uuid}/members/{user_id:uuid}",
        responses=problem_responses(404),
        summary="Remove a user from a group",
    )
    async def remove_member(
        self,
        groups: NamedDependency[GroupService],
        group_id: FromPath[uuid.UUID],
        user_id: FromPath[uuid.UUID],
    ) -> None:
        await groups.remove_member(group_id, user_id)


class AdminApiKeyController(Controller):
    path = "/v1/admin/api-keys"
    tags = ["tenant admin"]
    security = SECURED
    guards = _ADMIN

    @post(
        "/",
        responses=problem_responses(404),
        summary="Issue an API key acting as a user (the key is shown only in this response)",
    )
    async def create_api_key(
        self, api_keys: NamedDependency[ApiKeyService], data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyCreated:
        return api_key_created(await api_keys.issue(user_id=data.user_id, name=data.name))

    @get("/", responses=problem_responses(), summary="List API keys (never their secrets)")
    async def list_api_keys(
        self, api_keys: NamedDependency[ApiKeyService], limit: Limit = 100, offset: Offset = 0
    ) -> ApiKeyPage:
        rows = await api_keys.page(limit=limit, offset=offset)
        return ApiKeyPage(
            items=[api_key_read(k) for k in rows],
            next_offset=next_offset(rows, limit=limit, offset=offset),
        )

    @delete("/{key_id:uuid}", responses=problem_responses(404), summary="Revoke an API key")
    async def revoke_api_key(
        self, api_keys: NamedDependency[ApiKeyService], key_id: FromPath[uuid.UUID]
    ) -> None:
        await api_keys.revoke(key_id)


class MeController(Controller):
    path = "/v1/me"
    tags = ["identity"]
    security = SECURED
    guards = [requires_tenant]
    dependencies = {"users": Provide(provide_user_service, sync_to_thread=False)}

    @get("/", responses=problem_responses(), summary="Who the caller is")
    async def me(
        self, users: NamedDependency[UserService], ctx: NamedDependency[TenantContext]
    ) -> MeRead:
        assert ctx.user_id is not None  # requires_tenant
        user = await users.get(ctx.user_id)
        return MeRead(
            tenant=MeTenant(id=ctx.tenant_id, slug=ctx.tenant_slug, region=ctx.region),
            user=MeUser(id=user.id, email=user.email, display_name=user.display_name),
            roles=sorted(ctx.roles),
            group_ids=sorted(ctx.group_ids),
            auth_method=ctx.auth_method,
        )


class OperatorTenantAdminController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/admins"
    tags = ["operator"]
    security = SECURED
    guards = [requires_operator]

    @post(
        "/",
        responses=problem_responses(404, 409),
        summary="Create a tenant admin and their first API key (shown only in this response)",
    )
    async def bootstrap_admin(
        self,
        bootstrap: NamedDependency[TenantAdminBootstrap],
        tenant_id: FromPath[uuid.UUID],
        data: JSONBody[AdminBootstrap],
    ) -> AdminBootstrapped:
        user, issued = await bootstrap.run(
            tenant_id, email=data.email, display_name=data.display_name
        )
        return AdminBootstrapped(user=user_read(user, []), api_key=api_key_created(issued))


def provide_role_mappings(
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> RoleMappingService:
    return RoleMappingService(db, ctx, audit)


async def role_mappings_read(mappings: RoleMappingService) -> RoleMappings:
    default_role, items = await mappings.read()
    return RoleMappings(
        default_role=Role(default_role),
        mappings=[RoleMappingItem(idp_group=g, role=Role(r)) for g, r in items],
    )


class RoleMappingController(Controller):
    path = "/v1/admin/role-mappings"
    tags = ["tenant admin"]
    security = SECURED
    guards = _ADMIN
    dependencies = {"mappings": Provide(provide_role_mappings, sync_to_thread=False)}

    @get("/", responses=problem_responses(), summary="IdP group to role mappings")
    async def get_role_mappings(
        self, mappings: NamedDependency[RoleMappingService]
    ) -> RoleMappings:
        default_role, items = await mappings.read()
        return RoleMappings(
            default_role=Role(default_role),
            mappings=[RoleMappingItem(idp_group=g, role=Role(r)) for g, r in items],
        )

    @put(
        "/",
        responses=problem_responses(),
        summary="Replace the mappings; they apply to every user's next request",
    )
    async def put_role_mappings(
        self, mappings: NamedDependency[RoleMappingService], data: JSONBody[RoleMappings]
    ) -> RoleMappings:
        await mappings.replace(
            data.default_role.value, [(m.idp_group, m.role.value) for m in data.mappings]
        )
        return await role_mappings_read(mappings)


class LogoutController(Controller):
    path = "/auth/logout"
    tags = ["identity"]
    # Only a session can be ended; an API key is refused (422 not_a_session).
    security = SESSION_SECURED
    guards = [requires_tenant]
    opt = {ACCEPT_SESSION_COOKIE: True}

    @post(
        "/",
        status_code=204,
        responses=problem_responses(422),
        summary="End the current Bulwark session (revoked server-side, cookie cleared)",
    )
    async def logout(
        self,
        db: NamedDependency[AsyncSession],
        ctx: NamedDependency[TenantContext],
        audit: NamedDependency[AuditLog],
        pepper: NamedDependency[str],
    ) -> Response[None]:
        if ctx.auth_method != "session" or ctx.credential_id is None:
            raise NotASession()
        sessions = SessionService(db, ctx, pepper=pepper, ttl=timedelta(0))
        if await sessions.revoke(ctx.credential_id):
            await audit.record(
                AuditAction.SESSION_REVOKED,
                resource_type=ResourceType.SESSION,
                resource_id=ctx.credential_id,
            )
        response: Response[None] = Response(content=None, status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
