"""Chat sessions: private to the person (or API key) who started them, sealed at rest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from chat.errors import ChatSessionNotFound
from chat.models import ChatMessage, ChatSession
from chat.repositories import ChatMessageRepository, ChatSessionRepository
from kernel.tenancy import TenantContext
from keys.services import TenantKeys
from retrieval.prompt import Turn

TITLE_KIND = "chat-title"
MESSAGE_KIND = "chat-message"


class ChatSessionService:
    def __init__(self, session: AsyncSession, ctx: TenantContext, keys: TenantKeys) -> None:
        self.ctx = ctx
        self.keys = keys
        self.sessions = ChatSessionRepository(session, ctx)
        self.messages = ChatMessageRepository(session, ctx)

    def _mine(self) -> ColumnElement[bool]:
        if self.ctx.user_id is not None:
            return ChatSession.user_id == self.ctx.user_id
        if self.ctx.credential_id is not None:
            return (ChatSession.user_id.is_(None)) & (
                ChatSession.credential_id == self.ctx.credential_id
            )
        return ChatSession.id.is_(None)  # no principal: nothing is anyone's

    async def page(self, *, limit: int, offset: int) -> tuple[list[tuple[ChatSession, str]], int]:
        rows = await self.sessions.find(
            self._mine(),
            order_by=[ChatSession.updated_at.desc(), ChatSession.id],
            offset=offset,
            limit=limit,
        )
        total = await self.sessions.count(self._mine())
        return [(row, await self.title(row)) for row in rows], total

    async def get(self, session_id: uuid.UUID) -> ChatSession:
        rows = await self.sessions.find(
            self._mine() & (ChatSession.id == session_id), order_by=[ChatSession.id], limit=1
        )
        if not rows:
            raise ChatSessionNotFound()
        return rows[0]

    async def title(self, row: ChatSession) -> str:
        return (await self.keys.open(TITLE_KIND, str(row.id), row.sealed_title)).decode()

    async def transcript(self, row: ChatSession) -> list[tuple[ChatMessage, str]]:
        return [
            (m, (await self.keys.open(MESSAGE_KIND, str(m.id), m.sealed_content)).decode())
            for m in await self.messages.of_session(row.id)
        ]

    async def history(self, row: ChatSession) -> list[Turn]:
        return [Turn(m.role, text) for m, text in await self.transcript(row)]

    async def start(self, first_message: str) -> ChatSession:
        session_id = uuid.uuid4()
        title = " ".join(first_message.split())[:80]
        row = ChatSession(
            id=session_id,
            user_id=self.ctx.user_id,
            credential_id=self.ctx.credential_id if self.ctx.user_id is None else None,
            sealed_title=await self.keys.seal(TITLE_KIND, str(session_id), title.encode()),
            message_count=0,
        )
        return await self.sessions.add(row)

    async def append(
        self,
        row: ChatSession,
        role: str,
        content: str,
        *,
        tokens: int = 0,
        citations: Sequence[dict[str, Any]] = (),
        meta: dict[str, Any] | None = None,
    ) -> ChatMessage:
        message_id = uuid.uuid4()
        message = ChatMessage(
            id=message_id,
            session_id=row.id,
            seq=row.message_count,
            role=role,
            sealed_content=await self.keys.seal(MESSAGE_KIND, str(message_id), content.encode()),
            tokens=tokens,
            citations=list(citations),
            meta=dict(meta or {}),
        )
        row.message_count += 1
        return self.messages.stage(message)

    async def delete(self, session_id: uuid.UUID) -> None:
        row = await self.get(session_id)
        await self.sessions.remove(row.id)
