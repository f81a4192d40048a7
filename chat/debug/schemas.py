from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

MAX_MINUTES = 60


class RawContentSwitchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Turn raw-content debug logging on for a bounded time. ``reason`` is recorded in the audit
    log as a keyed hash only (it may name an incident, not a person)."""

    minutes: Annotated[int, msgspec.Meta(ge=1, le=MAX_MINUTES)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class RawContentSwitchOut(msgspec.Struct):
    enabled: bool
    until: datetime | None
    allowed_by_operator: bool
