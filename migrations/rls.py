"""PostgreSQL row-level security for tenant-owned tables (a no-op on SQLite).

FORCE makes the policy apply to the table owner too; the setting is read through NULLIF because a
pooled connection returns '' (not NULL) after a transaction-local ``set_config``. With no tenant
set, the comparison is NULL and every row is hidden: fail closed.
"""

from __future__ import annotations

from alembic import op

from kernel.db import TENANT_SETTING

_TENANT = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"


def enable_tenant_rls(table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
    op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
    op.execute(
        f'CREATE POLICY tenant_isolation ON "{table}" '
        f"USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
    )


def disable_tenant_rls(table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"')
    op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
    op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
