"""Everything a tenant's regional database holds about one subject, by store, and its removal.

Each method is scoped to the caller's tenant; deletions are idempotent (a second run finds
nothing and deletes nothing), which is what makes an interrupted erasure resumable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from audit.models import AuditEvent, AuditSubject
from auth.models import ApiKey, Group, Membership, User, UserSession
from chat.models import ChatMessage, ChatSession
from compliance.models import RetentionPolicyRow, SarRequest
from gateway.models import RateWindow, UsageCounter, UsageRecord
from kernel.repositories import TenantPolicyRows, TenantScoped
from retrieval.models import CacheEntry, Document


class SarRepository(TenantScoped[SarRequest]):
    model = SarRequest

    async def of_job(self, job_id: uuid.UUID) -> SarRequest | None:
        rows = await self.find(SarRequest.job_id == job_id, order_by=[SarRequest.id], limit=1)
        return rows[0] if rows else None


class SubjectDataRepository(TenantScoped[User]):
    """The subject's rows in every regional store of this tenant."""

    model = User

    def _tenant(self, model: type) -> object:
        return model.tenant_id == self.ctx.tenant_id  # type: ignore[attr-defined]

    async def _ids(self, column: object, *where: object) -> list[str]:
        result = await self.session.execute(select(column).where(*where))  # type: ignore[call-overload]
        return [str(value) for value in result.scalars().all()]

    async def user(self, user_id: uuid.UUID) -> User | None:
        return await self.get(user_id)

    async def by_email(self, email: str) -> User | None:
        rows = await self.find(
            func.lower(User.email) == email.lower(), order_by=[User.created_at], limit=1
        )
        return rows[0] if rows else None

    async def by_external_id(self, external_id: str) -> User | None:
        rows = await self.find(User.external_id == external_id, order_by=[User.created_at], limit=1)
        return rows[0] if rows else None

    async def memberships(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(
            Membership.group_id, self._tenant(Membership), Membership.user_id == user_id
        )

    async def api_keys(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(ApiKey.id, self._tenant(ApiKey), ApiKey.user_id == user_id)

    async def sessions(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(
            UserSession.id, self._tenant(UserSession), UserSession.user_id == user_id
        )

    async def chat_sessions(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(
            ChatSession.id, self._tenant(ChatSession), ChatSession.user_id == user_id
        )

    async def chat_messages(self, session_ids: Sequence[str]) -> list[str]:
        if not session_ids:
            return []
        return await self._ids(
            ChatMessage.id,
            self._tenant(ChatMessage),
            ChatMessage.session_id.in_([uuid.UUID(s) for s in session_ids]),
        )

    async def documents(self, user_id: uuid.UUID) -> list[Document]:
        result = await self.session.execute(
            select(Document).where(self._tenant(Document), Document.owner_id == user_id)  # type: ignore[arg-type]
        )
        return list(result.scalars().all())

    async def cache_entries(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(
            CacheEntry.id, self._tenant(CacheEntry), CacheEntry.asker_id == user_id
        )

    async def usage_records(self, user_id: uuid.UUID) -> list[str]:
        return await self._ids(
            UsageRecord.id, self._tenant(UsageRecord), UsageRecord.user_id == user_id
        )

    async def counters(self, subject: str) -> list[str]:
        return await self._ids(
            UsageCounter.id, self._tenant(UsageCounter), UsageCounter.scope == subject
        )

    async def rate_windows(self, subject: str) -> list[str]:
        return await self._ids(
            RateWindow.id, self._tenant(RateWindow), RateWindow.subject == subject
        )

    async def audit_events(self, actor: str | None, user_id: uuid.UUID) -> list[str]:
        """Events the subject acted in (by its pseudonym) or that are about its user record."""
        about = AuditEvent.resource_id == str(user_id)
        where = or_(AuditEvent.actor == actor, about) if actor else about
        return await self._ids(AuditEvent.id, self._tenant(AuditEvent), where)

    async def rows(self, model: type[Any], ids: Sequence[str]) -> list[Any]:
        """This tenant's rows of ``model`` with these ids (for the access export)."""
        if not ids:
            return []
        id_column = model.id
        wanted: list[Any] = [uuid.UUID(i) for i in ids]
        result = await self.session.execute(
            select(model).where(self._tenant(model), id_column.in_(wanted))  # type: ignore[arg-type]
        )
        return list(result.scalars().all())

    async def groups_of(self, group_ids: Sequence[str]) -> dict[str, str]:
        if not group_ids:
            return {}
        result = await self.session.execute(
            select(Group.id, Group.name).where(
                self._tenant(Group),  # type: ignore[arg-type]
                Group.id.in_([uuid.UUID(g) for g in group_ids]),
            )
        )
        return {str(group_id): name for group_id, name in result.all()}

    # --- erasure --------------------------------------------------------------------------

    async def delete_chat(self, session_ids: Sequence[str]) -> None:
        ids = [uuid.UUID(s) for s in session_ids]
        if not ids:
            return
        await self.session.execute(
            delete(ChatMessage).where(
                self._tenant(ChatMessage),  # type: ignore[arg-type]
                ChatMessage.session_id.in_(ids),
            )
        )
        await self.session.execute(
            delete(ChatSession).where(self._tenant(ChatSession), ChatSession.id.in_(ids))  # type: ignore[arg-type]
        )

    async def reassign_documents(self, document_ids: Sequence[uuid.UUID]) -> None:
        if document_ids:
            await self.session.execute(
                update(Document)
                .where(self._tenant(Document), Document.id.in_(list(document_ids)))  # type: ignore[arg-type]
                .values(owner_id=None)
            )

    async def anonymize_usage(self, user_id: uuid.UUID, subject: str) -> None:
        """Usage stays for the tenant's bill, no longer tied to the person."""
        await self.session.execute(
            update(UsageRecord)
            .where(self._tenant(UsageRecord), UsageRecord.user_id == user_id)  # type: ignore[arg-type]
            .values(user_id=None, credential_id=None)
        )
        await self.session.execute(
            delete(UsageCounter).where(self._tenant(UsageCounter), UsageCounter.scope == subject)  # type: ignore[arg-type]
        )
        await self.session.execute(
            delete(RateWindow).where(self._tenant(RateWindow), RateWindow.subject == subject)  # type: ignore[arg-type]
        )

    async def delete_identity(self, user_id: uuid.UUID) -> None:
        for model, column in (
            (ApiKey, ApiKey.user_id),
            (UserSession, UserSession.user_id),
            (Membership, Membership.user_id),
            (User, User.id),
        ):
            await self.session.execute(
                delete(model).where(self._tenant(model), column == user_id)  # type: ignore[arg-type]
            )

    async def destroy_audit_secret(self, subject: str) -> None:
        """The subject's pseudonym secret: without it, its events can no longer be linked."""
        await self.session.execute(
            delete(AuditSubject).where(
                self._tenant(AuditSubject),  # type: ignore[arg-type]
                AuditSubject.subject == subject,
            )
        )


class RetentionRepository(TenantPolicyRows[RetentionPolicyRow]):
    """This tenant's retention policy, and the rows older than its cutoffs."""

    model = RetentionPolicyRow

    async def delete_chat_before(self, cutoff: datetime) -> tuple[int, int]:
        """Messages older than ``cutoff``, and sessions whose last activity is older."""
        messages = await self.session.execute(
            delete(ChatMessage).where(
                ChatMessage.tenant_id == self.ctx.tenant_id, ChatMessage.created_at < cutoff
            )
        )
        stale = select(ChatSession.id).where(
            ChatSession.tenant_id == self.ctx.tenant_id, ChatSession.updated_at < cutoff
        )
        ids = list((await self.session.execute(stale)).scalars().all())
        if ids:
            await self.session.execute(
                delete(ChatMessage).where(
                    ChatMessage.tenant_id == self.ctx.tenant_id, ChatMessage.session_id.in_(ids)
                )
            )
            await self.session.execute(
                delete(ChatSession).where(
                    ChatSession.tenant_id == self.ctx.tenant_id, ChatSession.id.in_(ids)
                )
            )
        return len(ids), int(messages.rowcount or 0)  # type: ignore[attr-defined]

    async def cache_before(self, cutoff: datetime) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(CacheEntry.id).where(
                CacheEntry.tenant_id == self.ctx.tenant_id, CacheEntry.created_at < cutoff
            )
        )
        return list(result.scalars().all())

    async def delete_usage_before(self, cutoff: datetime) -> int:
        result = await self.session.execute(
            delete(UsageRecord).where(
                UsageRecord.tenant_id == self.ctx.tenant_id, UsageRecord.created_at < cutoff
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def documents_updated_between(
        self, after: datetime | None, before: datetime
    ) -> list[Document]:
        query = select(Document).where(
            Document.tenant_id == self.ctx.tenant_id, Document.updated_at < before
        )
        if after is not None:
            query = query.where(Document.updated_at >= after)
        return list((await self.session.execute(query)).scalars().all())
