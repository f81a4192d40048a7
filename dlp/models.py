"""The regional DLP table: one policy row per tenant (RLS on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, Timestamped, UTCDateTime, utcnow


class DlpPolicyRow(Timestamped, RegionalBase):
    __tablename__ = "dlp_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # ``dlp.policies.policy_json``: types, thresholds, actions, regexes, allow-list terms.
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
