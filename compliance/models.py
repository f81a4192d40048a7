"""The regional record of a subject-access request (RLS on PostgreSQL).

The subject is held by id only (plus a keyed hash of the reference the officer gave); the
findings and the report are sealed with the tenant's keys. ``steps_done`` makes an erasure
resumable: each step is idempotent and recorded once it committed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime


class SarRequest(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "sar_requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # access | erasure
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    reference_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    document_policy: Mapped[str] = mapped_column(String(16), nullable=False)  # delete | reassign
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # queued|running|done|failed
    steps_done: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    sealed_findings: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_report: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signature: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class RetentionPolicyRow(Timestamped, RegionalBase):
    """One tenant's retention periods (``compliance.schemas.RetentionPolicy`` as JSON)."""

    __tablename__ = "retention_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    last_swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Originals of documents last updated before this were already removed by a sweep.
    originals_swept_to: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
