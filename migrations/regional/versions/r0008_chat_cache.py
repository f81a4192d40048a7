"""Regional: chat sessions and messages, the semantic cache's entries and the sources they cite
(RLS on PostgreSQL).

Revision ID: r0008_chat
Revises: r0007_dlp
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0008_chat"
down_revision = "r0007_dlp"
branch_labels = None
depends_on = None

TABLES = ("cache_entries", "cache_sources", "chat_sessions", "chat_messages", "chat_policies")


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    )


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("exact_key", sa.String(64), nullable=False),
        sa.Column("scope_key", sa.String(64), nullable=False),
        sa.Column("asker_id", sa.Uuid(), nullable=True),
        sa.Column("sealed_question", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_answer", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_cache_entries"),
    )
    for column in ("tenant_id", "exact_key", "asker_id", "expires_at"):
        op.create_index(f"ix_cache_entries_{column}", "cache_entries", [column])
    op.create_table(
        "cache_sources",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "document_id", name="pk_cache_sources"),
    )
    op.create_index("ix_cache_sources_tenant_id", "cache_sources", ["tenant_id"])
    op.create_index("ix_cache_sources_document_id", "cache_sources", ["document_id"])
    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("sealed_title", sa.LargeBinary(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_chat_sessions"),
    )
    for column in ("tenant_id", "user_id", "credential_id"):
        op.create_index(f"ix_chat_sessions_{column}", "chat_sessions", [column])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("sealed_content", sa.LargeBinary(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_chat_messages"),
    )
    for column in ("tenant_id", "session_id"):
        op.create_index(f"ix_chat_messages_{column}", "chat_messages", [column])
    op.create_table(
        "chat_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_chat_policies"),
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
