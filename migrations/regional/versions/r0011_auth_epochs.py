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

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0011_auth_epochs"
down_revision = "r0010_debug"
branch_labels = None
depends_on = None

SOURCES = ("users", "groups", "memberships", "role_mappings", "api_keys", "user_sessions")
_OPERATIONS = {"INSERT": "NEW", "UPDATE": "NEW", "DELETE": "OLD"}


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
        for table in SOURCES:
            op.execute(
                f"CREATE TRIGGER auth_epoch AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION bump_auth_epoch()"
            )
        return
    for table in SOURCES:
        for operation, row in _OPERATIONS.items():
            # Fixed table and column names only, no input.
            trigger = (
                f"CREATE TRIGGER auth_epoch_{table}_{operation.lower()} "  # noqa: S608
                f"AFTER {operation} ON {table} BEGIN "
                f"INSERT INTO auth_epochs (tenant_id, epoch) VALUES ({row}.tenant_id, random()) "
                "ON CONFLICT (tenant_id) DO UPDATE SET epoch = excluded.epoch; END"
            )
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in SOURCES:
            op.execute(f"DROP TRIGGER IF EXISTS auth_epoch ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bump_auth_epoch()")
        op.execute("DROP POLICY IF EXISTS epoch_read ON auth_epochs")
        disable_tenant_rls("auth_epochs")
    else:
        for table in SOURCES:
            for operation in _OPERATIONS:
                op.execute(f"DROP TRIGGER IF EXISTS auth_epoch_{table}_{operation.lower()}")
    op.drop_table("auth_epochs")
