"""Qdrant Edge in process (``qdrant-edge-py``): the embedded default's vector store.

One shard per region, under the region's ``vector_store`` directory, owned by one process (Edge
has no server: a second process must not open the same shard). Every tenant of the region shares
that one shard, keyed by ``tenant_id``:

* a shard or collection per tenant would multiply segments, HNSW graphs, file handles and WALs by
  the number of tenants, most of them tiny; Qdrant's own guidance for multitenancy is one
  collection with a tenant-keyed payload index, and ``is_tenant`` makes the engine lay out and
  search each tenant's points together, so a filtered search stays fast at any tenant count;
* isolation does not rest on the layout but on the filter: every operation below starts from
  ``tenant_id == ctx.tenant_id`` (``retrieval.acl.tenant_scope``), point ids are derived from the
  tenant (``point_id``), and sparse IDF statistics are computed over the tenant's own points only,
  so one tenant's vocabulary never shifts another's scores;
* regions never share a shard: residency is a directory per region, resolved by ``residency/``.

The library is synchronous: each call runs in a worker thread (``asyncio.to_thread``).

The engine is this store's upstream, in process: a call it fails (it raises plain ``Exception``:
a shard closed or gone, a disk error, a corrupt segment) is ``VectorStoreUnavailable`` (503),
and every point it returns is checked like a server's reply (``checked_hit``): a payload
without its tenant, ids or a finite score is a corrupt shard, never an unhandled error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe
import structlog

from retrieval.acl import (
    DocumentAcl,
    FilterNode,
    Never,
    Scalar,
    SearchFilters,
    acl_payload,
    chunk_payload,
    document_scope,
    search_filter,
    tenant_scope,
)
from retrieval.errors import VectorStoreUnavailable
from retrieval.vectorstore import (
    DENSE,
    DENSE_SIZE,
    FUSION,
    SPARSE,
    ChunkPoint,
    Fusion,
    SparseVector,
    VectorHit,
    check_region,
    check_search,
    checked_entry,
    checked_hit,
    checked_score,
    point_id,
)
from retrieval.vectorstore._filters import to_filter

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext

log = structlog.get_logger("bulwark.vectorstore")

KEYWORD_FIELDS = (
    "document_id",
    "visibility",
    "acl_groups",
    "acl_users",
    "attr_keys",
    "attr_pairs",
)


class _EdgeFilters:
    """``qdrant_edge`` constructors for the shared filter translation."""

    def match_value(self, key: str, value: Scalar) -> Any:
        return qe.FieldCondition(key, match=qe.MatchValue(value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def match_except(self, key: str, values: list[str]) -> Any:
        return qe.FieldCondition(key, match=qe.MatchExcept(values))

    def is_empty(self, key: str) -> Any:
        return qe.IsEmptyCondition(key)

    def at_most(self, key: str, value: int) -> Any:
        return qe.FieldCondition(key, range=qe.RangeFloat(lte=float(value)))

    def filter(self, must: list[Any], should: list[Any], must_not: list[Any]) -> Any:
        return qe.Filter(must=must or None, should=should or None, must_not=must_not or None)


_MODEL = _EdgeFilters()


def edge_filter(node: FilterNode) -> qe.Filter:
    result: qe.Filter = to_filter(node, _MODEL)
    return result


# An Edge shard locks its WAL: one process owns it. Within that process every store object on the
# same path (the API's runtime, a CLI command's, a test's) shares one open shard, counted.
_shards: dict[Path, tuple[qe.EdgeShard, int]] = {}
_shards_lock = threading.Lock()


def _acquire(path: Path, config: qe.EdgeConfig, region: str) -> qe.EdgeShard:
    with _shards_lock:
        held = _shards.get(path)
        if held is not None:
            _shards[path] = (held[0], held[1] + 1)
            return held[0]
        try:
            if path.exists() and any(path.iterdir()):
                shard = qe.EdgeShard.load(str(path), config)
            else:
                shard = qe.EdgeShard.create(str(path), config)
        except Exception as exc:  # qdrant_edge raises plain Exception
            # Typically the shard's WAL is locked by another process: an Edge shard has one
            # owner, so a separate worker needs a Qdrant server instead.
            log.error("vector_store_open_failed", region=region, error=str(exc))
            raise VectorStoreUnavailable(region) from exc
        _shards[path] = (shard, 1)
        return shard


def _release(path: Path) -> None:
    with _shards_lock:
        held = _shards.get(path)
        if held is None:
            return
        shard, count = held
        if count > 1:
            _shards[path] = (shard, count - 1)
            return
        del _shards[path]
        try:
            shard.flush()
            shard.close()
        except Exception as exc:  # qdrant_edge raises plain Exception
            # Shutting down with the shard's directory gone (or its disk failing): what is not
            # flushed is in the WAL; nothing to do but say so.
            log.warning("vector_store_close_failed", path=str(path), error=str(exc)[:200])


class _EdgeShardOwner:
    """One Edge shard of a region at ``<location>/<subdir>``: opened once (shared within the
    process), its payload indexes created on first open, its calls run off the event loop."""

    subdir: str

    def __init__(self, region: str, location: str | Path, *, dense_size: int = DENSE_SIZE) -> None:
        self.region = region
        self.path = Path(location).absolute() / self.subdir
        self.dense_size = dense_size
        self._shard: qe.EdgeShard | None = None
        self._open_lock = threading.Lock()

    def _config(self) -> qe.EdgeConfig:
        raise NotImplementedError

    def _indexes(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def _open(self) -> qe.EdgeShard:
        with self._open_lock:
            if self._shard is None:
                shard = _acquire(self.path, self._config(), self.region)
                indexed = set(shard.info().payload_schema)
                for name, schema in self._indexes():
                    if name not in indexed:
                        shard.update(qe.UpdateOperation.create_field_index(name, schema))
                self._shard = shard
            return self._shard

    async def _run(self, ctx: TenantContext, op: Any) -> Any:
        check_region(self.region, ctx)

        def run() -> Any:
            shard = self._open()
            try:
                return op(shard)
            except Exception as exc:  # qdrant_edge raises plain Exception
                log.error("vector_store_call_failed", region=self.region, error=str(exc)[:200])
                raise VectorStoreUnavailable(self.region) from exc

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        def close() -> None:
            with self._open_lock:
                if self._shard is not None:
                    self._shard = None
                    _release(self.path)

        await asyncio.to_thread(close)


class EdgeVectorStore(_EdgeShardOwner):
    """One region's chunks in a Qdrant Edge shard at ``<location>/shard``."""

    subdir = "shard"

    # --- lifecycle --------------------------------------------------------------------------

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self.dense_size, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    def _indexes(self) -> list[tuple[str, Any]]:
        return [
            ("tenant_id", qe.KeywordIndexParams(is_tenant=True)),
            ("classification", qe.IntegerIndexParams(lookup=True, range=True)),
            *((name, qe.PayloadSchemaType.Keyword) for name in KEYWORD_FIELDS),
        ]

    async def ensure(self, ctx: TenantContext | None = None) -> None:
        if ctx is not None:
            check_region(self.region, ctx)
        await asyncio.to_thread(self._open)

    async def optimize(self) -> bool:
        """Run Edge's segment optimizers now (it has no background optimizer): builds the HNSW
        and merges segments after bulk loads. Blocks a worker thread until done."""
        optimized: bool = await asyncio.to_thread(lambda: self._open().optimize())
        return optimized

    # --- writes -----------------------------------------------------------------------------

    async def upsert(self, ctx: TenantContext, points: Sequence[ChunkPoint]) -> None:
        check_region(self.region, ctx)
        if not points:
            return
        built = [
            qe.Point(
                point_id(ctx.tenant_id, p.chunk_id),
                {
                    DENSE: list(p.dense),
                    SPARSE: qe.SparseVector(list(p.sparse.indices), list(p.sparse.values)),
                },
                chunk_payload(
                    ctx.tenant_id, p.document_id, p.chunk_id, p.ordinal, p.acl, p.metadata, p.sealed
                ),
            )
            for p in points
        ]
        await self._run(ctx, lambda s: s.update(qe.UpdateOperation.upsert_points(built)))

    async def delete_document(self, ctx: TenantContext, document_id: str) -> None:
        scope = edge_filter(document_scope(ctx, document_id))
        await self._run(ctx, lambda s: s.update(qe.UpdateOperation.delete_points_by_filter(scope)))

    async def set_acl(self, ctx: TenantContext, document_id: str, acl: DocumentAcl) -> None:
        scope = edge_filter(document_scope(ctx, document_id))
        op = qe.UpdateOperation.set_payload_by_filter(scope, acl_payload(acl))
        await self._run(ctx, lambda s: s.update(op))

    # --- reads ------------------------------------------------------------------------------

    async def search(
        self,
        ctx: TenantContext,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters | None = None,
        fusion: Fusion = FUSION,
    ) -> list[VectorHit]:
        check_region(self.region, ctx)
        request = self.query_request(ctx, dense, sparse, limit, filters, fusion)
        if request is None:
            return []
        points = await self._run(ctx, lambda s: s.query(request))
        return [checked_hit(ctx, p.payload, p.score) for p in points]

    def query_request(
        self,
        ctx: TenantContext,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters | None = None,
        fusion: Fusion = FUSION,
    ) -> qe.QueryRequest | None:
        """The one engine query of a search (None when the filter admits nothing): dense and
        sparse prefetches, each under the tenant + ACL filter, joined by ``fusion``."""
        check_search(limit, dense, sparse)
        node = search_filter(ctx, filters)
        if isinstance(node, Never):
            return None
        allowed = edge_filter(node)
        prefetch_limit = fusion.candidates(limit)
        prefetches = []
        if dense is not None:
            prefetches.append(
                qe.Prefetch(
                    limit=prefetch_limit,
                    query=qe.Query.Nearest(list(dense), using=DENSE),
                    filter=allowed,
                )
            )
        has_terms = sparse is not None and bool(sparse.indices)
        if sparse is not None and has_terms:
            prefetches.append(
                qe.Prefetch(
                    limit=prefetch_limit,
                    query=qe.Query.Nearest(
                        qe.SparseVector(list(sparse.indices), list(sparse.values)), using=SPARSE
                    ),
                    filter=allowed,
                    # IDF over this tenant's chunks only: no other tenant's vocabulary in scores.
                    params=qe.SearchParams(idf=qe.IdfParams(corpus=edge_filter(tenant_scope(ctx)))),
                )
            )
        return qe.QueryRequest(
            limit=limit,
            prefetches=prefetches,
            query=_fused(fusion, dense is not None, has_terms),
            filter=allowed,
            with_payload=True,
        )

    async def best_similarity(
        self, ctx: TenantContext, dense: Sequence[float], filters: SearchFilters | None = None
    ) -> float | None:
        check_region(self.region, ctx)
        node = search_filter(ctx, filters)
        if isinstance(node, Never):
            return None
        request = qe.QueryRequest(
            limit=1, query=qe.Query.Nearest(list(dense), using=DENSE), filter=edge_filter(node)
        )
        points = await self._run(ctx, lambda s: s.query(request))
        return checked_score(ctx, points[0].score) if points else None

    async def count(self, ctx: TenantContext, document_id: str | None = None) -> int:
        node = tenant_scope(ctx) if document_id is None else document_scope(ctx, document_id)
        request = qe.CountRequest(exact=True, filter=edge_filter(node))
        result: int = await self._run(ctx, lambda s: s.count(request))
        return result


def _fused(fusion: Fusion, dense: bool, sparse: bool) -> Any:
    if fusion.method == "dbsf":
        return qe.Fusion.Dbsf()
    return qe.Fusion.Rrf(k=fusion.k, weights=fusion.weights(dense, sparse))


class EdgeQuestionIndex(_EdgeShardOwner):
    """The semantic cache's question vectors in a second Edge shard, ``<location>/cache``."""

    subdir = "cache"

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self.dense_size, distance=qe.Distance.Cosine)}
        )

    def _indexes(self) -> list[tuple[str, Any]]:
        return [("tenant_id", qe.KeywordIndexParams(is_tenant=True))]

    async def put(self, ctx: TenantContext, entry_id: str, vector: Sequence[float]) -> None:
        point = qe.Point(
            entry_id, {DENSE: list(vector)}, {"tenant_id": str(ctx.tenant_id), "entry_id": entry_id}
        )
        await self._run(ctx, lambda s: s.update(qe.UpdateOperation.upsert_points([point])))

    async def nearest(
        self, ctx: TenantContext, vector: Sequence[float], *, limit: int, min_score: float
    ) -> list[tuple[str, float]]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector), using=DENSE),
            filter=edge_filter(tenant_scope(ctx)),
            score_threshold=min_score,
            with_payload=True,
        )
        points = await self._run(ctx, lambda s: s.query(request))
        return [checked_entry(ctx, p.payload, p.score) for p in points]

    async def delete(self, ctx: TenantContext, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        scope = edge_filter(tenant_scope(ctx))
        ids = list(entry_ids)

        def delete(shard: qe.EdgeShard) -> None:
            # Only this tenant's points: ids of another tenant's entries are left alone.
            shard.update(
                qe.UpdateOperation.delete_points_by_filter(
                    qe.Filter(must=[scope, qe.FieldCondition("entry_id", match=qe.MatchAny(ids))])
                )
            )

        await self._run(ctx, delete)
