from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class ScimTokenIssued(msgspec.Struct):
    """A new SCIM token: ``token`` is shown only in this response."""

    id: uuid.UUID
    token: str
    hint: str
    created_at: datetime
