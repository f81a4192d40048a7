from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from kernel.audit_events import AuditOutcome


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


Hash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="SHA-256, hex.")]
# Times as hashed and signed, one spelling per instant: UTC, microseconds, "Z".
ChainTime = Annotated[
    str,
    msgspec.Meta(
        description="UTC, ISO 8601 with microseconds and Z, exactly as hashed or signed.",
        extra_json_schema={"format": "date-time"},
    ),
]


Canon = Annotated[
    int,
    msgspec.Meta(
        description="The canonical JSON the hash or signature covers: 2 is RFC 8785. Absent: "
        "written before RFC 8785, with the legacy encoding (see the README).",
    ),
]


class AuditEventRead(msgspec.Struct, omit_defaults=True):
    """One event. Its ``hash`` is the SHA-256 of the canonical JSON of all its other members
    (``canon`` included, absent on events written before RFC 8785)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    sequence: int
    occurred_at: ChainTime
    actor: Annotated[str, msgspec.Meta(description="The actor's pseudonym (ps_...).")]
    action: str
    resource_type: str
    resource_id: str | None
    outcome: AuditOutcome
    request_id: str | None
    detail: dict[str, Any]
    prev_hash: Hash
    hash: Hash
    canon: Canon | None = None


class AuditEventPage(msgspec.Struct):
    items: list[AuditEventRead]
    next_cursor: int | None


class AuditVerification(msgspec.Struct):
    ok: bool
    events_checked: int
    first_bad_sequence: int | None


class AuditCheckpoint(msgspec.Struct):
    """A signed statement of a tenant's chain head.

    ``signature`` is the Ed25519 signature (base64) of the RFC 8785 canonical JSON of the object
    ``{algorithm, canon, head_hash, key_id, sequence, signed_at, tenant_id}`` with exactly the
    values below; ``public_key`` is the raw 32-byte key, base64.
    """

    tenant_id: uuid.UUID
    sequence: int
    head_hash: Hash
    signed_at: ChainTime
    key_id: str
    algorithm: str
    canon: Canon
    public_key: str
    signature: str
