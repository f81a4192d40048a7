"""Tenant-scoped chat sessions and messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete

from chat.models import ChatMessage, ChatPolicyRow, ChatSession
from kernel.repositories import TenantPolicyRows, TenantScoped


class ChatSessionRepository(TenantScoped[ChatSession]):
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


class ChatMessageRepository(TenantScoped[ChatMessage]):
    model = ChatMessage

    async def of_session(self, session_id: uuid.UUID) -> Sequence[ChatMessage]:
        return await self.find(ChatMessage.session_id == session_id, order_by=[ChatMessage.seq])


class ChatPolicyRepository(TenantPolicyRows[ChatPolicyRow]):
    model = ChatPolicyRow
