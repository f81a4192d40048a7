"""Tenant-scoped identity repositories.

Each repository is bound to one ``TenantContext`` and every statement it issues filters on that
tenant (on PostgreSQL, RLS enforces the same underneath). A row of another tenant is simply not
found, which the services turn into 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import (
    ApiKey,
    AuthEpoch,
    Group,
    IdentityProvider,
    IdentitySettingsRow,
    Membership,
    RoleMapping,
    SamlAssertion,
    ScimToken,
    User,
    UserSession,
)
from kernel.repositories import TenantScope, TenantScoped
from kernel.tenancy import TenantContext


class UserRepository(TenantScoped[User]):
    model = User

    async def get_by_idp_subject(self, subject: str) -> User | None:
        result = await self.session.execute(self._select().where(User.idp_subject == subject))
        return result.scalar_one_or_none()

    async def get_by_user_name(self, user_name: str) -> User | None:
        result = await self.session.execute(self._select().where(User.user_name == user_name))
        return result.scalar_one_or_none()

    async def get_by_external_id(self, external_id: str) -> User | None:
        result = await self.session.execute(self._select().where(User.external_id == external_id))
        return result.scalar_one_or_none()

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(self._select().where(User.email == email))
        return result.scalar_one_or_none()

    async def group_ids_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(Membership.group_id).where(
                Membership.tenant_id == self.ctx.tenant_id, Membership.user_id == user_id
            )
        )
        return list(result.scalars().all())

    async def group_ids_of_many(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        groups: dict[uuid.UUID, list[uuid.UUID]] = {user_id: [] for user_id in user_ids}
        if not user_ids:
            return groups
        result = await self.session.execute(
            select(Membership.user_id, Membership.group_id)
            .where(
                Membership.tenant_id == self.ctx.tenant_id, Membership.user_id.in_(list(user_ids))
            )
            .order_by(Membership.created_at)
        )
        for user_id, group_id in result.all():
            groups[user_id].append(group_id)
        return groups


class GroupRepository(TenantScoped[Group]):
    model = Group

    async def get_by_external_id(self, external_id: str) -> Group | None:
        result = await self.session.execute(self._select().where(Group.external_id == external_id))
        return result.scalar_one_or_none()

    async def of_user(self, user_id: uuid.UUID) -> Sequence[Group]:
        result = await self.session.execute(
            self._select()
            .join(
                Membership,
                (Membership.group_id == Group.id) & (Membership.tenant_id == Group.tenant_id),
            )
            .where(Membership.user_id == user_id)
            .order_by(Group.name)
        )
        return result.scalars().all()

    async def get_by_name(self, name: str) -> Group | None:
        result = await self.session.execute(self._select().where(Group.name == name))
        return result.scalar_one_or_none()

    async def member_ids(self, group_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        members: dict[uuid.UUID, list[uuid.UUID]] = {group_id: [] for group_id in group_ids}
        if not group_ids:
            return members
        result = await self.session.execute(
            select(Membership.group_id, Membership.user_id)
            .where(
                Membership.tenant_id == self.ctx.tenant_id, Membership.group_id.in_(list(group_ids))
            )
            .order_by(Membership.created_at)
        )
        for group_id, user_id in result.all():
            members[group_id].append(user_id)
        return members

    async def has_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            select(Membership.user_id).where(
                Membership.tenant_id == self.ctx.tenant_id,
                Membership.group_id == group_id,
                Membership.user_id == user_id,
            )
        )
        return result.first() is not None

    async def add_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self.session.add(
            Membership(tenant_id=self.ctx.tenant_id, group_id=group_id, user_id=user_id)
        )
        await self.session.flush()

    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Membership).where(
                Membership.tenant_id == self.ctx.tenant_id,
                Membership.group_id == group_id,
                Membership.user_id == user_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))


# The tenant's identity epoch (``AuthEpoch``): readable without a tenant scope. Built once;
# parameter ``tenant_id``.
AUTH_EPOCH_QUERY: Select[int] = select(AuthEpoch.epoch).where(
    AuthEpoch.tenant_id == bindparam("tenant_id")
)


class ApiKeyRepository(TenantScoped[ApiKey]):
    model = ApiKey

    async def revoke(self, key_id: uuid.UUID, when: datetime) -> bool:
        result = await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.tenant_id == self.ctx.tenant_id,
                ApiKey.id == key_id,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=when)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_all_of(self, user_id: uuid.UUID, when: datetime) -> int:
        result = await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.tenant_id == self.ctx.tenant_id,
                ApiKey.user_id == user_id,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=when)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class SessionRepository(TenantScoped[UserSession]):
    model = UserSession

    async def revoke(self, session_id: uuid.UUID, when: datetime) -> bool:
        result = await self.session.execute(
            update(UserSession)
            .where(
                UserSession.tenant_id == self.ctx.tenant_id,
                UserSession.id == session_id,
                UserSession.revoked_at.is_(None),
            )
            .values(revoked_at=when)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_all_of(self, user_id: uuid.UUID, when: datetime) -> int:
        result = await self.session.execute(
            update(UserSession)
            .where(
                UserSession.tenant_id == self.ctx.tenant_id,
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
            )
            .values(revoked_at=when)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class ScimTokenRepository(TenantScoped[ScimToken]):
    model = ScimToken

    async def revoke_all(self, when: datetime) -> int:
        result = await self.session.execute(
            update(ScimToken)
            .where(ScimToken.tenant_id == self.ctx.tenant_id, ScimToken.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class RoleMappingRepository(TenantScope):
    """IdP group -> role mappings and the tenant's default role."""

    async def all(self) -> Sequence[RoleMapping]:
        result = await self.session.execute(
            select(RoleMapping)
            .where(RoleMapping.tenant_id == self.ctx.tenant_id)
            .order_by(RoleMapping.idp_group, RoleMapping.role)
        )
        return result.scalars().all()

    async def roles_for(self, idp_groups: Sequence[str]) -> set[str]:
        if not idp_groups:
            return set()
        result = await self.session.execute(
            select(RoleMapping.role).where(
                RoleMapping.tenant_id == self.ctx.tenant_id,
                RoleMapping.idp_group.in_(list(idp_groups)),
            )
        )
        return set(result.scalars().all())

    async def replace(self, mappings: Sequence[tuple[str, str]]) -> None:
        await self.session.execute(
            delete(RoleMapping).where(RoleMapping.tenant_id == self.ctx.tenant_id)
        )
        for idp_group, role in sorted(set(mappings)):
            self.session.add(
                RoleMapping(tenant_id=self.ctx.tenant_id, idp_group=idp_group, role=role)
            )
        await self.session.flush()

    async def default_role(self) -> str:
        row = await self.session.get(IdentitySettingsRow, self.ctx.tenant_id)
        return row.default_role if row is not None else "member"

    async def set_default_role(self, role: str) -> None:
        row = await self.session.get(IdentitySettingsRow, self.ctx.tenant_id)
        if row is None:
            self.session.add(IdentitySettingsRow(tenant_id=self.ctx.tenant_id, default_role=role))
        else:
            row.default_role = role
        await self.session.flush()


class IdentityProviderRepository(TenantScope):
    """A tenant's IdP configurations, one per kind ("oidc", "saml")."""

    async def get(self, kind: str) -> IdentityProvider | None:
        result = await self.session.execute(
            select(IdentityProvider).where(
                IdentityProvider.tenant_id == self.ctx.tenant_id, IdentityProvider.kind == kind
            )
        )
        return result.scalar_one_or_none()

    async def put(self, kind: str, config: dict[str, Any]) -> IdentityProvider:
        row = await self.get(kind)
        if row is None:
            row = IdentityProvider(tenant_id=self.ctx.tenant_id, kind=kind, config=config)
            self.session.add(row)
        else:
            row.config = config
        await self.session.flush()
        return row


class SamlAssertionRepository(TenantScope):
    """The SAML replay cache: an assertion id is consumed once per tenant."""

    async def consume(self, assertion_id: str, expires_at: datetime) -> bool:
        """Record ``assertion_id``; False when it was already recorded. The primary key decides,
        so of two concurrent logins with one assertion only one commits (the other waits on the
        key, then fails)."""
        try:
            async with self.session.begin_nested():
                self.session.add(
                    SamlAssertion(
                        tenant_id=self.ctx.tenant_id,
                        assertion_id=assertion_id,
                        expires_at=expires_at,
                    )
                )
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def purge_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(SamlAssertion).where(
                SamlAssertion.tenant_id == self.ctx.tenant_id, SamlAssertion.expires_at < now
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


async def purge_identity(session: AsyncSession, ctx: TenantContext) -> None:
    """Delete every identity row of one tenant (used when a deleted tenant is purged)."""
    for model in (UserSession, ScimToken, RoleMapping, ApiKey, Membership, Group, User):
        await session.execute(delete(model).where(model.tenant_id == ctx.tenant_id))
    for keyed in (IdentitySettingsRow, IdentityProvider, SamlAssertion):
        await session.execute(delete(keyed).where(keyed.tenant_id == ctx.tenant_id))
