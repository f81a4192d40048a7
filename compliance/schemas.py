"""Subject-access request bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from kernel.json_schema import exactly_one_of


class SubjectRef(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of: the user's id, email, or IdP external id."""

    json_schema_extra: ClassVar[dict[str, Any]] = exactly_one_of("user_id", "email", "external_id")

    user_id: uuid.UUID | None = None
    email: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{3,320}$")] | None = None
    external_id: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,256}$")] | None = None


class SarCreate(msgspec.Struct, forbid_unknown_fields=True):
    subject: SubjectRef
    kind: Literal["access", "erasure"]
    # Documents the subject uploaded: deleted, or kept and reassigned to the tenant (None: the
    # tenant's policy, ``erasure_documents`` in /v1/admin/retention).
    documents: Literal["delete", "reassign"] | None = None


class SarAccepted(msgspec.Struct):
    id: uuid.UUID
    job_id: uuid.UUID
    status: str


class SarRead(msgspec.Struct):
    id: uuid.UUID
    kind: str
    status: str
    steps_done: list[str]
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    # When done: what each store held and (erasure) what became of it, signed (Ed25519 over
    # the report's canonical JSON: RFC 8785 when it has ``canon`` 2, see ``audit.canon``) with
    # the deployment key named in it.
    report: dict[str, Any] | None
    signature: str | None


Days = Annotated[int, msgspec.Meta(ge=0, le=36500)]


class RetentionPolicy(msgspec.Struct, forbid_unknown_fields=True):
    """How long each kind of data is kept, in days (None: kept until deleted or erased). The
    sweeper removes what is older and records what it removed."""

    chat_messages_days: Days | None = None
    cache_entries_days: Days | None = None
    usage_detail_days: Days | None = None
    uploaded_originals_days: Days | None = None
    # What an erasure does with the documents the person uploaded, unless the request says.
    erasure_documents: Literal["delete", "reassign"] = "delete"


class RetentionSweep(msgspec.Struct):
    chat_sessions: int
    chat_messages: int
    cache_entries: int
    usage_records: int
    uploaded_originals: int
