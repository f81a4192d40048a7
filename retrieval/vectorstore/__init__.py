"""The vector store port: tenant-scoped hybrid search with the ABAC filter inside the query.

Every method takes the caller's ``TenantContext`` and constrains ``tenant_id`` itself; there is no
unscoped read or write. Searches send the compiled ACL filter (``retrieval.acl.search_filter``)
inside the one hybrid query — on the dense and the sparse prefetch and on the fused result — so
a chunk the principal may not read is never a candidate, never counted and never returned.

Two adapters implement the port (``retrieval.vectorstore.adapters``): ``EdgeVectorStore``, Qdrant
Edge in process for the embedded default, and ``ServerVectorStore``, a Qdrant cluster through
``qdrant-client``. ``open_vector_store`` picks one from a region's ``vector_store`` setting.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from retrieval.acl import DocumentAcl, Scalar, SearchFilters
from retrieval.errors import InvalidSearch, VectorStoreRegionMismatch, VectorStoreUnavailable

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext

__all__ = [
    "DENSE",
    "DENSE_SIZE",
    "FUSION",
    "SPARSE",
    "ChunkPoint",
    "Fusion",
    "SearchFilters",
    "SparseVector",
    "VectorHit",
    "VectorStore",
    "check_region",
    "checked_entry",
    "checked_hit",
    "checked_score",
    "open_vector_store",
    "point_id",
]

log = structlog.get_logger("bulwark.vectorstore")

DENSE = "dense"
SPARSE = "sparse"
DENSE_SIZE = 384
RRF_K = 60
# Namespace of point ids: uuid5(namespace, "tenant:chunk").
_POINT_NAMESPACE = uuid.UUID("6f1c2d0e-5b8a-4e3f-9a47-0c6d2b1e7a90")


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the dense and the sparse rankings become one: reciprocal-rank fusion with a weight
    per side (``method="rrf"``), or distribution-based score fusion (``"dbsf"``: each side's
    scores normalised by their spread, then added), over ``depth`` candidates from each side
    (at least twice the limit)."""

    method: str = "rrf"
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    depth: int = 40
    k: int = RRF_K

    def candidates(self, limit: int) -> int:
        return max(2 * limit, self.depth)

    def weights(self, dense: bool, sparse: bool) -> list[float] | None:
        """The RRF weights of the prefetches sent (dense first), None when they are equal."""
        chosen = [
            w for w, sent in ((self.dense_weight, dense), (self.sparse_weight, sparse)) if sent
        ]
        return None if len(set(chosen)) <= 1 else chosen


# The fusion every search uses unless told otherwise, chosen on the labelled sets of
# ``bench/retrieval_quality.py``: distribution-based score fusion is ahead of dense alone, sparse
# alone and (weighted) RRF on all three sets, where equal-weight RRF fell below sparse alone on
# the public one (docs/PERFORMANCE.md, "Session 9: retrieval").
FUSION = Fusion(method="dbsf")


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Strictly increasing ``indices`` and their ``values`` (``retrieval.sparse`` makes them);
    unpacks as ``(indices, values)``."""

    indices: Sequence[int]
    values: Sequence[float]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise InvalidSearch("A sparse vector needs as many values as indices.")

    def __iter__(self) -> Iterator[Sequence[int] | Sequence[float]]:
        return iter((self.indices, self.values))


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """One chunk to index: its vectors, its document's ACL and optional caller metadata."""

    chunk_id: str
    document_id: str
    ordinal: int
    dense: Sequence[float]
    sparse: SparseVector
    acl: DocumentAcl
    metadata: Mapping[str, Scalar | Sequence[Scalar]] = field(default_factory=dict)
    # The chunk's text and heading path, sealed with the tenant's keys (base64).
    sealed: str | None = None


@dataclass(frozen=True, slots=True)
class VectorHit:
    chunk_id: str
    document_id: str
    score: float
    payload: Mapping[str, Any]


def point_id(tenant_id: uuid.UUID, chunk_id: str) -> str:
    """The stored point id: derived from tenant and chunk, so that no tenant can name (and so
    overwrite) another tenant's point, whatever chunk id it sends."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{tenant_id}:{chunk_id}"))


def check_region(store_region: str, ctx: TenantContext) -> None:
    """A store serves one region; a context pinned elsewhere is refused, never served."""
    if ctx.region != store_region:
        raise VectorStoreRegionMismatch(store_region, ctx.region)


def _malformed(ctx: TenantContext, what: str) -> VectorStoreUnavailable:
    log.error("vector_store_reply_malformed", region=ctx.region, missing=what)
    return VectorStoreUnavailable(ctx.region)


def _checked_point(ctx: TenantContext, payload: Any, score: Any, fields: Sequence[str]) -> None:
    """A point that came back for ``ctx`` carries its tenant, the string ``fields`` every stored
    point of its kind has, and a finite score; anything else is a store that answered something
    other than what was written (a truncated or altered reply, or a corrupt shard). A point of
    another tenant is never served: the store's filter failed, so the store is not trusted."""
    if not isinstance(payload, Mapping):
        raise _malformed(ctx, "payload")
    if payload.get("tenant_id") != str(ctx.tenant_id):
        raise _malformed(ctx, "tenant_id")
    for name in fields:
        if not isinstance(payload.get(name), str):
            raise _malformed(ctx, name)
    checked_score(ctx, score)


def checked_score(ctx: TenantContext, score: Any) -> float:
    """A similarity the store returned: a finite number."""
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise _malformed(ctx, "score")
    return float(score)


def checked_hit(ctx: TenantContext, payload: Any, score: Any) -> VectorHit:
    """A search hit from a point the store returned, checked (``_checked_point``)."""
    _checked_point(ctx, payload, score, ("chunk_id", "document_id"))
    return VectorHit(
        chunk_id=payload["chunk_id"],
        document_id=payload["document_id"],
        score=float(score),
        payload=payload,
    )


def checked_entry(ctx: TenantContext, payload: Any, score: Any) -> tuple[str, float]:
    """A semantic-cache question the store returned, checked: (entry id, score)."""
    _checked_point(ctx, payload, score, ("entry_id",))
    return str(payload["entry_id"]), float(score)


def check_search(limit: int, dense: Sequence[float] | None, sparse: SparseVector | None) -> None:
    if not 1 <= limit <= 10_000:
        raise InvalidSearch("A search limit must be from 1 to 10000.")
    if dense is None and (sparse is None or not sparse.indices):
        raise InvalidSearch("A search needs a dense or a non-empty sparse vector.")


@runtime_checkable
class VectorStore(Protocol):
    """One region's chunk vectors. Implementations keep blocking work off the event loop."""

    region: str

    async def ensure(self, ctx: TenantContext | None = None) -> None:
        """Create the region's shard or collection and its payload indexes (idempotent)."""

    async def upsert(self, ctx: TenantContext, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace chunks of ``ctx``'s tenant."""

    async def delete_document(self, ctx: TenantContext, document_id: str) -> None:
        """Delete every chunk of one of ``ctx``'s tenant's documents."""

    async def set_acl(self, ctx: TenantContext, document_id: str, acl: DocumentAcl) -> None:
        """Replace a document's ACL on all its chunks in place; the next search sees it."""

    async def search(
        self,
        ctx: TenantContext,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters | None = None,
        fusion: Fusion = FUSION,
    ) -> list[VectorHit]:
        """Hybrid search (dense and sparse candidates joined by ``fusion``) over what ``ctx``
        may read; one vector alone is that ranking alone."""
        ...

    async def count(self, ctx: TenantContext, document_id: str | None = None) -> int:
        """Chunks of ``ctx``'s tenant (of one document), whatever their ACL: for admin and tests."""
        ...

    async def best_similarity(
        self, ctx: TenantContext, dense: Sequence[float], filters: SearchFilters | None = None
    ) -> float | None:
        """The cosine of the closest chunk ``ctx`` may read (None: none), with the same ABAC
        filter inside the query as ``search``: how relevant the best source is at all."""
        ...

    async def optimize(self) -> bool:
        """Index what was written since the last call, if the engine leaves that to its owner
        (Qdrant Edge has no background optimizer; a Qdrant server has one: no-op there).
        True when something was optimized."""
        ...

    async def close(self) -> None: ...


def open_vector_store(region: str, location: str, *, dense_size: int = DENSE_SIZE) -> VectorStore:
    """The store of one region from its ``vector_store`` setting: a Qdrant URL or a directory."""
    if location.startswith(("http://", "https://")):
        from retrieval.vectorstore.adapters.server import ServerVectorStore

        return ServerVectorStore.connect(region, location, dense_size=dense_size)
    from retrieval.vectorstore.adapters.edge import EdgeVectorStore

    return EdgeVectorStore(region, location, dense_size=dense_size)
