"""Regional: contextual indexing — which index text each document's chunks were built with
(``documents.index_version``) and a job's progress (``jobs.done`` of ``jobs.total``).

Documents stored before contextual indexing keep ``index_version`` 1 until a re-index job
rebuilds their vectors with the title and heading path.

Revision ID: r0015_contextual_index
Revises: r0014_rate_blocks
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0015_contextual_index"
down_revision = "r0014_rate_blocks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as table:
        table.add_column(
            sa.Column("index_version", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("done", sa.Integer(), nullable=True))
        table.add_column(sa.Column("total", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.drop_column("total")
        table.drop_column("done")
    with op.batch_alter_table("documents") as table:
        table.drop_column("index_version")
