"""Regional: subject-access requests and retention policies (RLS on PostgreSQL).

Revision ID: r0009_sar
Revises: r0008_chat
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0009_sar"
down_revision = "r0008_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sar_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("reference_hash", sa.String(64), nullable=False),
        sa.Column("document_policy", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("steps_done", sa.JSON(), nullable=False),
        sa.Column("sealed_findings", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_report", sa.LargeBinary(), nullable=True),
        sa.Column("signature", sa.String(200), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sar_requests"),
    )
    op.create_index("ix_sar_requests_tenant_id", "sar_requests", ["tenant_id"])
    op.create_index("ix_sar_requests_subject_id", "sar_requests", ["subject_id"])
    op.create_index("ix_sar_requests_job_id", "sar_requests", ["job_id"])
    op.create_table(
        "retention_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("last_swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("originals_swept_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_retention_policies"),
    )
    for table in ("sar_requests", "retention_policies"):
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in ("retention_policies", "sar_requests"):
        disable_tenant_rls(table)
        op.drop_table(table)
