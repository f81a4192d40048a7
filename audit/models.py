"""Regional audit tables: the append-only event log, each tenant's chain head, and the per-subject
pseudonym secrets.

``audit_events`` is append-only in the database itself (triggers refuse UPDATE and DELETE, and on
PostgreSQL the app role is not granted them either); see migration r0002.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime


class AuditEvent(TenantOwned, RegionalBase):
    __tablename__ = "audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "sequence"),
        UniqueConstraint("id"),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
        CheckConstraint("outcome IN ('success', 'failure', 'denied')", name="outcome"),
        Index("ix_audit_events_tenant_id_action", "tenant_id", "action"),
        Index("ix_audit_events_tenant_id_actor", "tenant_id", "actor"),
        Index(
            "ix_audit_events_tenant_id_resource_type_resource_id",
            "tenant_id",
            "resource_type",
            "resource_id",
        ),
        Index("ix_audit_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
    )

    # The primary key (tenant_id, sequence) already indexes the tenant: no separate index.
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # The canonical JSON the hash was computed with (``audit.canon``); NULL: an event written
    # before RFC 8785 (migration r0016), hashed with the legacy encoding.
    canon: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditHead(TenantOwned, RegionalBase):
    """The last sequence and hash of a tenant's chain. Its row lock serialises appends."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditSubject(TenantOwned, Timestamped, RegionalBase):
    """One subject's pseudonym secret. Deleting the row unlinks the subject from its events."""

    __tablename__ = "audit_subjects"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
