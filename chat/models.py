"""Regional, tenant-owned chat sessions and messages. Message text is sealed with the tenant's
keys; citations keep ids only; usage keeps numbers only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, TenantSettings, Timestamped, UTCDateTime, utcnow


class ChatSession(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "chat_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    # API keys without a user (service accounts) own their sessions through the key.
    credential_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    sealed_title: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class ChatMessage(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "chat_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # [{"n", "document_id", "chunk_id"}]: ids only (quotes are sealed inside the content).
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    # Numbers and labels only: usage, model tier, cache outcome, groundedness score.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class ChatPolicyRow(TenantSettings, RegionalBase):
    """One tenant's chat policy (``chat.schemas.ChatPolicyBody`` as JSON)."""

    __tablename__ = "chat_policies"
