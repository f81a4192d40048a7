"""Regional: SSO and SCIM — user/group identity attributes, IdP configuration, role mappings,
sessions, SCIM tokens and the SAML replay cache (all tenant-owned, RLS on PostgreSQL).

Revision ID: r0004
Revises: r0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from migrations.rls import disable_tenant_rls, enable_tenant_rls

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "identity_settings",
    "role_mappings",
    "identity_providers",
    "user_sessions",
    "scim_tokens",
    "saml_assertions",
)


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    )


def _backfill_user_names() -> None:
    # Existing users get their email as SCIM userName. The owner is subject to FORCE RLS, so
    # lift it for this one statement's transaction.
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE users SET user_name = email WHERE user_name IS NULL")
    if postgres:
        op.execute("ALTER TABLE users FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("user_name", sa.String(320), nullable=True))
        batch.add_column(sa.Column("external_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("idp_subject", sa.String(256), nullable=True))
        batch.add_column(sa.Column("given_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("family_name", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("profile", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="api"))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    _backfill_user_names()
    with op.batch_alter_table("users") as batch:
        batch.alter_column("user_name", existing_type=sa.String(320), nullable=False)
        batch.create_unique_constraint("uq_users_tenant_id_user_name", ["tenant_id", "user_name"])
        batch.create_unique_constraint(
            "uq_users_tenant_id_external_id", ["tenant_id", "external_id"]
        )
        batch.create_unique_constraint(
            "uq_users_tenant_id_idp_subject", ["tenant_id", "idp_subject"]
        )

    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("external_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch.create_unique_constraint(
            "uq_groups_tenant_id_external_id", ["tenant_id", "external_id"]
        )

    op.create_table(
        "identity_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("default_role", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_identity_settings"),
    )
    op.create_table(
        "role_mappings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("idp_group", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant_id", "idp_group", "role", name="pk_role_mappings"),
    )
    op.create_index("ix_role_mappings_tenant_id", "role_mappings", ["tenant_id"])
    op.create_table(
        "identity_providers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant_id", "kind", name="pk_identity_providers"),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("auth_method", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name="fk_user_sessions_tenant_id_user_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_user_sessions_tenant_id", "user_sessions", ["tenant_id"])
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("hint", sa.String(8), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_scim_tokens"),
    )
    op.create_index("ix_scim_tokens_tenant_id", "scim_tokens", ["tenant_id"])
    op.create_table(
        "saml_assertions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("assertion_id", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant_id", "assertion_id", name="pk_saml_assertions"),
    )
    op.create_index("ix_saml_assertions_tenant_id", "saml_assertions", ["tenant_id"])
    for table in NEW_TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
    with op.batch_alter_table("groups") as batch:
        batch.drop_constraint("uq_groups_tenant_id_external_id", type_="unique")
        batch.drop_column("updated_at")
        batch.drop_column("version")
        batch.drop_column("external_id")
    with op.batch_alter_table("users") as batch:
        for name in ("idp_subject", "external_id", "user_name"):
            batch.drop_constraint(f"uq_users_tenant_id_{name}", type_="unique")
        for column in (
            "version",
            "source",
            "profile",
            "family_name",
            "given_name",
            "idp_subject",
            "external_id",
            "user_name",
        ):
            batch.drop_column(column)
