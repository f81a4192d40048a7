from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from kernel.fields import VISIBLE

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"

Slug = Annotated[
    str,
    msgspec.Meta(
        pattern=SLUG_PATTERN,
        min_length=1,
        max_length=63,
        description="Lower-case letters, digits and dashes.",
    ),
]
TenantName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=VISIBLE)]
RegionName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,31}$", max_length=32)]


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    slug: Slug
    name: TenantName
    region: RegionName


class TenantUpdate(msgspec.Struct, forbid_unknown_fields=True):
    status: TenantStatus | None = None
    name: TenantName | None = None


class TenantRead(msgspec.Struct):
    id: uuid.UUID
    slug: str
    name: str
    region: str
    status: TenantStatus
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    purge_after: datetime | None = None
    purged_at: datetime | None = None


class TenantPage(msgspec.Struct):
    items: list[TenantRead]
    next_offset: int | None
