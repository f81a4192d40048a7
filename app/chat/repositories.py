"""Tenant-scoped chat sessions and messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatMessage, ChatPolicyRow, ChatSession
from auth.context import TenantContext
from auth.repositories import _TenantScoped


class ChatSessionRepository(_TenantScoped[ChatSession]):
    model = ChatSession

    async def remove(self, session_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(ChatMessage).where(
                ChatMessage.tenant_id == self.ctx.tenant_id, ChatMessage.session_id == session_id
            )
        )
        await self.session.execute(
            delete(ChatSession).where(
                ChatSession.tenant_id == self.ctx.tenant_id, ChatSession.id == session_id
            )
        )


class ChatMessageRepository(_TenantScoped[ChatMessage]):
    model = ChatMessage

    async def of_session(self, session_id: uuid.UUID) -> Sequence[ChatMessage]:
        return await self.find(ChatMessage.session_id == session_id, order_by=[ChatMessage.seq])


class ChatPolicyRepository:
    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        if not isinstance(ctx, TenantContext):
            raise TypeError("a TenantContext is required")
        self.session = session
        self.ctx = ctx

    async def get(self) -> ChatPolicyRow | None:
        result = await self.session.execute(
            select(ChatPolicyRow).where(ChatPolicyRow.tenant_id == self.ctx.tenant_id)
        )
        return result.scalar_one_or_none()

    async def put(self, policy: dict[str, Any]) -> ChatPolicyRow:
        row = await self.get()
        if row is None:
            row = ChatPolicyRow(tenant_id=self.ctx.tenant_id, policy=policy)
            self.session.add(row)
        else:
            row.policy = policy
        await self.session.flush()
        return row
