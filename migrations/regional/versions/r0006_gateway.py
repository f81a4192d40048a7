"""Regional: the LLM gateway's policies, BYO models, quota counters, rate windows, usage ledger
and batches (RLS on PostgreSQL).

Revision ID: r0006_gateway
Revises: r0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0006_gateway"
down_revision = "r0005"
branch_labels = None
depends_on = None

_TABLES = (
    "gateway_policies",
    "gateway_byo_models",
    "gateway_counters",
    "gateway_rate_windows",
    "gateway_usage",
    "gateway_batches",
    "gateway_batch_items",
)


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    )


def _id_and_tenant(table: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "gateway_policies",
        *_id_and_tenant("gateway_policies"),
        sa.Column("model_policy", sa.JSON(), nullable=False),
        sa.Column("quotas", sa.JSON(), nullable=False),
        sa.Column("identity_rpm", sa.Integer(), nullable=True),
        sa.Column("tenant_rpm", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_policies"),
        sa.UniqueConstraint("tenant_id", name="uq_gateway_policies_tenant_id"),
    )
    op.create_table(
        "gateway_byo_models",
        *_id_and_tenant("gateway_byo_models"),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("base_url", sa.String(512), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("sealed_api_key", sa.LargeBinary(), nullable=True),
        sa.Column("input_price_per_mtok", sa.Float(), nullable=False),
        sa.Column("output_price_per_mtok", sa.Float(), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_byo_models"),
        sa.UniqueConstraint("tenant_id", "tier", name="uq_gateway_byo_models_tenant_id_tier"),
    )
    op.create_table(
        "gateway_counters",
        *_id_and_tenant("gateway_counters"),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("used_tokens", sa.BigInteger(), nullable=False),
        sa.Column("used_microdollars", sa.BigInteger(), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reserved_microdollars", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_counters"),
        sa.UniqueConstraint(
            "tenant_id", "scope", "period", name="uq_gateway_counters_tenant_id_scope_period"
        ),
    )
    op.create_table(
        "gateway_rate_windows",
        *_id_and_tenant("gateway_rate_windows"),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_rate_windows"),
        sa.UniqueConstraint(
            "tenant_id",
            "subject",
            "window",
            name="uq_gateway_rate_windows_tenant_id_subject_window",
        ),
    )
    op.create_table(
        "gateway_usage",
        *_id_and_tenant("gateway_usage"),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("track", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_microdollars", sa.BigInteger(), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_usage"),
        sa.UniqueConstraint("tenant_id", "call_id", name="uq_gateway_usage_tenant_id_call_id"),
    )
    op.create_index("ix_gateway_usage_user_id", "gateway_usage", ["user_id"])
    op.create_index("ix_gateway_usage_day", "gateway_usage", ["day"])
    op.create_table(
        "gateway_batches",
        *_id_and_tenant("gateway_batches"),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_batches"),
    )
    op.create_table(
        "gateway_batch_items",
        *_id_and_tenant("gateway_batch_items"),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sealed_request", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_result", sa.LargeBinary(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_batch_items"),
        sa.UniqueConstraint(
            "batch_id", "position", name="uq_gateway_batch_items_batch_id_position"
        ),
    )
    op.create_index("ix_gateway_batch_items_batch_id", "gateway_batch_items", ["batch_id"])
    for table in _TABLES:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(_TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
