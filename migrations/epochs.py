"""Triggers that give a tenant's epoch (``auth_epochs``) a fresh random value in the same
transaction as any insert, update or delete of a row it covers (``kernel.epochs``)."""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

_OPERATIONS = {"INSERT": "NEW", "UPDATE": "NEW", "DELETE": "OLD"}


def create_epoch_triggers(tables: Iterable[str]) -> None:
    """On PostgreSQL through ``bump_auth_epoch()`` (created by ``r0011_auth_epochs``)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        if postgres:
            op.execute(
                f"CREATE TRIGGER auth_epoch AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION bump_auth_epoch()"
            )
            continue
        for operation, row in _OPERATIONS.items():
            # Fixed table and column names only, no input.
            trigger = (
                f"CREATE TRIGGER auth_epoch_{table}_{operation.lower()} "  # noqa: S608
                f"AFTER {operation} ON {table} BEGIN "
                f"INSERT INTO auth_epochs (tenant_id, epoch) VALUES ({row}.tenant_id, random()) "
                "ON CONFLICT (tenant_id) DO UPDATE SET epoch = excluded.epoch; END"
            )
            op.execute(trigger)


def drop_epoch_triggers(tables: Iterable[str]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS auth_epoch ON {table}")
            continue
        for operation in _OPERATIONS:
            op.execute(f"DROP TRIGGER IF EXISTS auth_epoch_{table}_{operation.lower()}")
