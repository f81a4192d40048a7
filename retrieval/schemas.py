from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from kernel.fields import TEXT, VISIBLE, AttributeKey, AttributeValue
from kernel.jobs.schemas import JobStatus

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=VISIBLE)]
ExternalId = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,256}$")]
SourceUri = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,2048}$")]
# A document's attribute rules: up to 20 keys, each with 1 to 50 values a reader may hold.
DocumentAttributes = Annotated[
    dict[
        AttributeKey,
        Annotated[list[AttributeValue], msgspec.Meta(min_length=1, max_length=50)],
    ],
    msgspec.Meta(max_length=20),
]
MetadataKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MetadataValue = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,256}$")]
# Search filters name metadata keys as the vector store's payload holds them.
FilterKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
Filters = Annotated[dict[FilterKey, str], msgspec.Meta(max_length=10)]


class Visibility(StrEnum):
    RESTRICTED = "restricted"
    TENANT = "tenant"


class AclSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Who may read a document. Readers: same tenant, and (visibility tenant, or listed user,
    or member of a listed group), and classification <= clearance, and every attribute key
    satisfied by one of the reader's values for it."""

    visibility: Visibility = Visibility.RESTRICTED
    groups: Annotated[list[uuid.UUID], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    users: Annotated[list[uuid.UUID], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    classification: Annotated[int, msgspec.Meta(ge=0, le=3)] = 0
    attributes: DocumentAttributes = msgspec.field(default_factory=dict)


class DocumentCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=5_000_000)]
    external_id: ExternalId | None = None
    source_uri: SourceUri | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=20)] = (
        msgspec.field(default_factory=dict)
    )
    # Omitted: only the uploader may read the document.
    acl: AclSpec | None = None


class DocumentAccepted(msgspec.Struct):
    document_id: uuid.UUID
    job_id: uuid.UUID | None
    version: int
    duplicate: bool


class JobRead(msgspec.Struct):
    id: uuid.UUID
    kind: str
    document_id: uuid.UUID | None
    status: JobStatus
    attempts: int
    error_code: str | None
    error_detail: str | None
    created_at: datetime
    finished_at: datetime | None
    # Progress of a job over many items (a re-index: documents done of total); null otherwise.
    done: int | None = None
    total: int | None = None


class DocumentRead(msgspec.Struct):
    id: uuid.UUID
    title: str
    external_id: str | None
    source_uri: str | None
    media_type: str
    size_bytes: int
    version: int
    status: str
    chunk_count: int
    # Which index text its vectors were built from (2: title, heading path and text).
    index_version: int
    owner_id: uuid.UUID | None
    acl: dict[str, Any]
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


class DocumentPage(msgspec.Struct):
    items: list[DocumentRead]
    next_offset: int | None


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=TEXT)]
    top_k: Annotated[int, msgspec.Meta(ge=1, le=50)] = 8
    # Metadata equality filters: they only ever narrow what the caller may read.
    filters: Filters = msgspec.field(default_factory=dict)


class SearchHit(msgspec.Struct):
    chunk_id: str
    document_id: uuid.UUID
    title: str
    heading_path: list[str]
    score: float
    text: str


class SearchResponse(msgspec.Struct):
    hits: list[SearchHit]
