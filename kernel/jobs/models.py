"""The ``jobs`` table: one background job of a tenant, in the tenant's regional database.

Ingestion and re-indexing (``retrieval``), batch completions (``gateway.batch``) and subject-access
erasure (``compliance``) all run as jobs. ``kind`` names the handler; ``document_id`` and
``document_version`` are the subject of an ingestion job and stay empty for the other kinds (the
column names predate the other kinds; renaming them is a migration with nothing to gain).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime, utcnow


class Job(TenantOwned, Timestamped, RegionalBase):
    """A background job (ingestion, re-indexing): carries its tenant explicitly; its status and
    progress (``done`` of ``total`` items, for a job over many) are what the API reports."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    document_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    document_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
