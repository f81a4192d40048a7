"""Regional: per-tenant identity epochs, kept by triggers, for the principal cache.

Every insert, update or delete of a row a principal is built from (users, groups, memberships,
role mappings, API keys, sessions) sets its tenant's epoch to a fresh random value in the same
transaction. The value carries no tenant data, so on PostgreSQL any tenant scope (or none) may
read it — the authenticator reads it before it builds a principal — while writes stay scoped to
the tenant like every other row.

Revision ID: r0011_auth_epochs
Revises: r0010_debug
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.epochs import create_epoch_triggers, drop_epoch_triggers
from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0011_auth_epochs"
down_revision = "r0010_debug"
branch_labels = None
depends_on = None

SOURCES = ("users", "groups", "memberships", "role_mappings", "api_keys", "user_sessions")


def upgrade() -> None:
    op.create_table(
        "auth_epochs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_auth_epochs"),
    )
    if op.get_bind().dialect.name == "postgresql":
        enable_tenant_rls("auth_epochs")
        op.execute("CREATE POLICY epoch_read ON auth_epochs FOR SELECT USING (true)")
        op.execute(
            """
            CREATE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE owner uuid;
            BEGIN
                IF TG_OP = 'DELETE' THEN owner := OLD.tenant_id;
                ELSE owner := NEW.tenant_id;
                END IF;
                INSERT INTO auth_epochs (tenant_id, epoch)
                VALUES (owner, (random() * 9.2e18)::bigint)
                ON CONFLICT (tenant_id) DO UPDATE SET epoch = EXCLUDED.epoch;
                RETURN NULL;
            END $$
            """
        )
    create_epoch_triggers(SOURCES)


def downgrade() -> None:
    drop_epoch_triggers(SOURCES)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bump_auth_epoch()")
        op.execute("DROP POLICY IF EXISTS epoch_read ON auth_epochs")
        disable_tenant_rls("auth_epochs")
    op.drop_table("auth_epochs")
