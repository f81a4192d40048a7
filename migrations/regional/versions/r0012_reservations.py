"""Regional: open quota reservations, one row per admitted call until it is settled (RLS).

Revision ID: r0012_reservations
Revises: r0011_auth_epochs
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0012_reservations"
down_revision = "r0011_auth_epochs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_reservations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("charges", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_gateway_reservations"),
    )
    op.create_index("ix_gateway_reservations_tenant_id", "gateway_reservations", ["tenant_id"])
    op.create_index(
        "ix_gateway_reservations_expiry", "gateway_reservations", ["tenant_id", "expires_at"]
    )
    enable_tenant_rls("gateway_reservations")


def downgrade() -> None:
    disable_tenant_rls("gateway_reservations")
    op.drop_table("gateway_reservations")
