"""Regional: per-tenant DLP policy (RLS on PostgreSQL).

Revision ID: r0007_dlp
Revises: r0006_gateway
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0007_dlp"
down_revision = "r0006_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dlp_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_dlp_policies"),
    )
    enable_tenant_rls("dlp_policies")


def downgrade() -> None:
    disable_tenant_rls("dlp_policies")
    op.drop_table("dlp_policies")
