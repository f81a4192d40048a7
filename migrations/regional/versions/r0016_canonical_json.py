"""Regional: the canonical-JSON version of each audit event (``audit_events.canon``).

Events appended from now on are hashed over RFC 8785 canonical JSON and record ``canon`` = 2
(``audit.canon``). Events already stored keep NULL: they were hashed with the legacy encoding and
are verified with it, so chains written before still verify. The column is added in place (no
batch rebuild on SQLite, which would drop the append-only triggers of r0002); existing rows are
not touched, which the append-only triggers would refuse anyway.

Revision ID: r0016_canonical_json
Revises: r0015_contextual_index
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0016_canonical_json"
down_revision = "r0015_contextual_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("canon", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    # Events written with RFC 8785 cannot be verified without their ``canon``: refuse to lose it.
    # The owner counts every tenant's rows: FORCE row-level security is lifted for that one
    # statement, inside this migration's transaction.
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY")
    written = bind.execute(
        sa.text("SELECT count(*) FROM audit_events WHERE canon IS NOT NULL")
    ).scalar_one()
    if postgres:
        op.execute("ALTER TABLE audit_events FORCE ROW LEVEL SECURITY")
    if written:
        raise RuntimeError(
            f"{written} audit events are hashed with RFC 8785 (canon 2): downgrading below "
            "r0016 would leave their chains unverifiable"
        )
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+), keeping the append-only triggers.
    op.drop_column("audit_events", "canon")
