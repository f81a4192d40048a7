"""Tenant-scoped queries behind the SCIM endpoints.

Every statement starts from the repository's tenant-scoped base (``_select``) or names the
tenant explicitly; a compiled SCIM filter is only ever added to it (``WHERE tenant_id = ... AND
<filter>``), so a filter cannot widen a query beyond the tenant. RLS scopes the same statements
again on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, exists, func, select, update

from auth.models import Group, Membership, User
from auth.repositories import GroupRepository, UserRepository
from auth.scim.filters import AttributeMap, Column, Condition, Related
from kernel.db import utcnow

# Ids per IN (...) list: well below SQLite's and asyncpg's parameter limits.
CHUNK = 500
T = TypeVar("T")


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class ScimUserRepository(UserRepository):
    @property
    def attributes(self) -> AttributeMap:
        """The User attributes a column answers (see ``auth.scim.filters``)."""

        def in_group(group_id: uuid.UUID) -> Condition:
            return exists().where(
                Membership.tenant_id == self.ctx.tenant_id,
                Membership.user_id == User.id,
                Membership.group_id == group_id,
            )

        def any_group() -> Condition:
            return exists().where(
                Membership.tenant_id == self.ctx.tenant_id, Membership.user_id == User.id
            )

        groups = Related(contains=in_group, any=any_group)
        return {
            ("id", None): Column(User.id, "id", nullable=False),
            ("user_name", None): Column(User.user_name, "string", nullable=False),
            ("external_id", None): Column(User.external_id, "string"),
            # A projection: where SCIM's displayName is unassigned it holds a default.
            ("display_name", None): Column(
                User.display_name, "string", nullable=False, exact=False
            ),
            ("name", "given_name"): Column(User.given_name, "string"),
            ("name", "family_name"): Column(User.family_name, "string"),
            ("active", None): Column(User.active, "boolean", nullable=False),
            ("meta", "created"): Column(User.created_at, "datetime", nullable=False),
            ("meta", "last_modified"): Column(User.updated_at, "datetime", nullable=False),
            ("groups", "value"): groups,
            ("groups", None): groups,
        }

    @property
    def default_order(self) -> list[Any]:
        return [User.created_at, User.id]

    async def user_name_taken(self, user_name: str, *, exclude: uuid.UUID | None) -> bool:
        """userName is unique without regard to case (RFC 7643 §4.1.1: caseExact false)."""
        statement = self._select().where(func.lower(User.user_name) == user_name.lower())
        if exclude is not None:
            statement = statement.where(User.id != exclude)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def email_taken(self, email: str, *, exclude: uuid.UUID | None) -> bool:
        statement = self._select().where(User.email == email)
        if exclude is not None:
            statement = statement.where(User.id != exclude)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def external_id_taken(self, external_id: str, *, exclude: uuid.UUID | None) -> bool:
        statement = self._select().where(User.external_id == external_id)
        if exclude is not None:
            statement = statement.where(User.id != exclude)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def groups_of(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
        """Each user's groups as (id, name), in membership order."""
        groups: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {u: [] for u in user_ids}
        for chunk in _chunks(list(user_ids)):
            result = await self.session.execute(
                select(Membership.user_id, Group.id, Group.name)
                .join(
                    Group,
                    (Group.tenant_id == Membership.tenant_id) & (Group.id == Membership.group_id),
                )
                .where(Membership.tenant_id == self.ctx.tenant_id, Membership.user_id.in_(chunk))
                .order_by(Membership.created_at, Group.name)
            )
            for user_id, group_id, name in result.all():
                groups[user_id].append((group_id, name))
        return groups

    async def existing(self, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for chunk in _chunks(list(user_ids)):
            result = await self.session.execute(
                select(User.id).where(User.tenant_id == self.ctx.tenant_id, User.id.in_(chunk))
            )
            found.update(result.scalars().all())
        return found

    async def touch(self, user_ids: Sequence[uuid.UUID]) -> None:
        """A new version for users whose representation changed (their ``groups``)."""
        for chunk in _chunks(list(user_ids)):
            await self.session.execute(
                update(User)
                .where(User.tenant_id == self.ctx.tenant_id, User.id.in_(chunk))
                .values(version=User.version + 1, updated_at=utcnow())
            )

    async def remove(self, user: User) -> None:
        """Delete the row; its memberships, API keys and sessions go with it (ON DELETE
        CASCADE on tenant-qualified foreign keys)."""
        if user.tenant_id != self.ctx.tenant_id:
            raise ValueError("a user of another tenant")
        await self.session.delete(user)
        await self.session.flush()


class ScimGroupRepository(GroupRepository):
    @property
    def attributes(self) -> AttributeMap:
        """The Group attributes a column answers (see ``auth.scim.filters``)."""

        def has_member(user_id: uuid.UUID) -> Condition:
            return exists().where(
                Membership.tenant_id == self.ctx.tenant_id,
                Membership.group_id == Group.id,
                Membership.user_id == user_id,
            )

        def any_member() -> Condition:
            return exists().where(
                Membership.tenant_id == self.ctx.tenant_id, Membership.group_id == Group.id
            )

        members = Related(contains=has_member, any=any_member)
        return {
            ("id", None): Column(Group.id, "id", nullable=False),
            ("display_name", None): Column(Group.name, "string", nullable=False),
            ("external_id", None): Column(Group.external_id, "string"),
            ("meta", "created"): Column(Group.created_at, "datetime", nullable=False),
            ("meta", "last_modified"): Column(Group.updated_at, "datetime", nullable=False),
            ("members", "value"): members,
            ("members", None): members,
        }

    @property
    def default_order(self) -> list[Any]:
        return [Group.created_at, Group.id]

    async def name_taken(self, name: str, *, exclude: uuid.UUID | None) -> bool:
        statement = self._select().where(Group.name == name)
        if exclude is not None:
            statement = statement.where(Group.id != exclude)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def external_id_taken(self, external_id: str, *, exclude: uuid.UUID | None) -> bool:
        statement = self._select().where(Group.external_id == external_id)
        if exclude is not None:
            statement = statement.where(Group.id != exclude)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def add_members(self, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> None:
        for user_id in user_ids:
            self.session.add(
                Membership(tenant_id=self.ctx.tenant_id, group_id=group_id, user_id=user_id)
            )
        await self.session.flush()

    async def remove_members(self, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> None:
        for chunk in _chunks(list(user_ids)):
            await self.session.execute(
                delete(Membership).where(
                    Membership.tenant_id == self.ctx.tenant_id,
                    Membership.group_id == group_id,
                    Membership.user_id.in_(chunk),
                )
            )

    async def touch(self, group_ids: Sequence[uuid.UUID]) -> None:
        """A new version for groups whose representation changed (their ``members``)."""
        for chunk in _chunks(list(group_ids)):
            await self.session.execute(
                update(Group)
                .where(Group.tenant_id == self.ctx.tenant_id, Group.id.in_(chunk))
                .values(version=Group.version + 1, updated_at=utcnow())
            )

    async def remove(self, group: Group) -> None:
        """Delete the row; its memberships go with it (ON DELETE CASCADE)."""
        if group.tenant_id != self.ctx.tenant_id:
            raise ValueError("a group of another tenant")
        await self.session.delete(group)
        await self.session.flush()
