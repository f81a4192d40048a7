"""Regional, tenant-owned: one row per tenant holding its raw-content debug switch."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import RegionalBase, Timestamped, UTCDateTime, utcnow


class DebugSwitchRow(Timestamped, RegionalBase):
    """``policy``: ``{"raw_content_until": ISO-8601 | None}`` (who switched it is audited)."""

    __tablename__ = "debug_switches"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
