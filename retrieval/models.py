"""Regional, tenant-owned tables of the knowledge base: documents and the semantic cache.

Titles, source URIs and file contents are tenant content: they are stored sealed with the
tenant's keys (the file itself in the object store, chunk text in the vector payload). The
content hash is kept in the clear only to recognise the same upload twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime, utcnow


class Document(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    sealed_title: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed_source_uri: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    media_type: Mapped[str] = mapped_column(String(128), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="processing")
    acl: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Which index text its chunks' vectors were built from (``retrieval.index.INDEX_VERSION``).
    index_version: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1, server_default="1"
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class CacheEntry(TenantOwned, Timestamped, RegionalBase):
    """A cached answer. Question and answer are sealed with the tenant's keys; ``exact_key`` is
    an HMAC of the canonical request (the exact layer), never the text. The question's embedding
    lives in the region's vector store under the same id (the semantic layer)."""

    __tablename__ = "cache_entries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    exact_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    # HMAC of the request's options (answer mode, top_k, filters): a semantic hit needs the same.
    scope_key: Mapped[str] = mapped_column(String(64), nullable=False)
    # Whose question created it: a subject-access erasure removes the subject's entries.
    asker_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    sealed_question: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed_answer: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class CacheSource(TenantOwned, RegionalBase):
    """A document (at a version) that a cached answer cites: a hit needs the asker to be able to
    read each of them now, at the same version; changing or deleting one drops the entry."""

    __tablename__ = "cache_sources"

    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
