"""Regional: the per-tenant raw-content debug switch (RLS on PostgreSQL).

Revision ID: r0010_debug
Revises: r0009_sar
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0010_debug"
down_revision = "r0009_sar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "debug_switches",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_debug_switches"),
    )
    enable_tenant_rls("debug_switches")


def downgrade() -> None:
    disable_tenant_rls("debug_switches")
    op.drop_table("debug_switches")
