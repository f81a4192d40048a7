"""Regional, tenant-owned: one row per tenant holding its raw-content debug switch."""

from __future__ import annotations

from kernel.db import RegionalBase, TenantSettings


class DebugSwitchRow(TenantSettings, RegionalBase):
    """``policy``: ``{"raw_content_until": ISO-8601 | None}`` (who switched it is audited)."""

    __tablename__ = "debug_switches"
