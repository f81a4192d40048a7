"""Regional: rate windows hand out admissions in blocks (``gateway_rate_windows.granted``).

Revision ID: r0014_rate_blocks
Revises: r0013_config_epochs
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0014_rate_blocks"
down_revision = "r0013_config_epochs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_rate_windows") as table:
        table.add_column(sa.Column("granted", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("gateway_rate_windows") as table:
        table.drop_column("granted")
