"""Regional: per-tenant KMS configuration and wrapped data keys, with tenant RLS.

Revision ID: r0003
Revises: r0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_kms",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(2048), nullable=False),
        sa.Column("aws_region", sa.String(32), nullable=True),
        sa.Column("role_arn", sa.String(2048), nullable=True),
        sa.Column("external_id", sa.String(1224), nullable=True),
        sa.Column("managed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_kms"),
    )
    op.create_table(
        "data_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("kms_key_id", sa.String(2048), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "version", name="pk_data_keys"),
    )
    for table in ("tenant_kms", "data_keys"):
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in ("data_keys", "tenant_kms"):
        disable_tenant_rls(table)
        op.drop_table(table)
