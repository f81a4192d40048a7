"""A Qdrant server or cluster through ``qdrant-client``: the scale-out vector store.

One region = one Qdrant deployment = one collection (``bulwark_chunks``) holding every tenant of
the region, with ``tenant_id`` as a tenant-keyed payload index (``is_tenant``):

* a collection per tenant multiplies HNSW graphs, segments and cluster metadata by the number of
  tenants, and Qdrant documents one collection partitioned by a tenant payload index as the way
  to serve many tenants; ``is_tenant`` co-locates each tenant's points on disk and lets the
  planner search a tenant's partition directly;
* isolation rests on the filter, not on the layout: every request below carries
  ``tenant_id == ctx.tenant_id`` (with the ACL inside the query for searches), point ids are
  derived from the tenant, and sparse IDF is computed over the tenant's own points;
* regions never share a collection: each region configures its own Qdrant URL, resolved by
  ``residency/``.

The async client keeps network calls off the event loop. Its local mode (``":memory:"`` or a
path) is brute force and only fit for tests of this code path.

Several processes (API replicas, workers) share one Qdrant: the first use of a collection may
race another process creating it, which is not an error. A Qdrant that cannot be reached, times
out or answers 5xx is an outage: ``VectorStoreUnavailable`` (503), never an unhandled error.

So is a reply that is not Qdrant's: qdrant-client raises ``json.JSONDecodeError`` for a body
that is empty, cut short or HTML, ``ResponseHandlingException`` for JSON of the wrong shape,
and an ``AssertionError`` for a 200 without its ``result``; every point that comes back must
carry this tenant's id and the fields its kind stores (``retrieval.vectorstore.checked_hit``).
A 4xx is Qdrant refusing a request this adapter built from validated input: the store does not
serve it (a collection deleted under us, a server of another API version), so it is an outage
too, logged with its status; after a 404 the collection is created again on the next call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import structlog
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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
from retrieval.vectorstore.adapters.edge import KEYWORD_FIELDS

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext

log = structlog.get_logger("bulwark.vectorstore")

COLLECTION = "bulwark_chunks"
CACHE_COLLECTION = "bulwark_cache"

_P = ParamSpec("_P")
_T = TypeVar("_T")
_C = TypeVar("_C", bound="_ServerCollection")


def _outage_is_503(
    method: Callable[Concatenate[_C, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_C, _P], Coroutine[Any, Any, _T]]:
    """Unreachable, timed out, an error status or a reply that is not Qdrant's: the region's
    vector store is unavailable (503)."""

    @functools.wraps(method)
    async def call(self: _C, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(self, *args, **kwargs)
        except UnexpectedResponse as exc:
            log.warning("vector_store_refused", region=self.region, status=exc.status_code)
            if exc.status_code == 404:
                self._ready = False
            raise VectorStoreUnavailable(self.region) from exc
        except (
            ResponseHandlingException,
            json.JSONDecodeError,  # a body that is not JSON at all
            UnicodeDecodeError,  # nor text
            AssertionError,  # qdrant-client's check that a 200 carried its ``result``
        ) as exc:
            log.warning(
                "vector_store_reply_malformed", region=self.region, error=type(exc).__name__
            )
            raise VectorStoreUnavailable(self.region) from exc

    return call


class _ClientFilters:
    """``qdrant_client.models`` constructors for the shared filter translation."""

    def match_value(self, key: str, value: Scalar) -> Any:
        return m.FieldCondition(key=key, match=m.MatchValue(value=value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return m.FieldCondition(key=key, match=m.MatchAny(any=values))

    def match_except(self, key: str, values: list[str]) -> Any:
        return m.FieldCondition(key=key, match=m.MatchExcept(**{"except": values}))

    def is_empty(self, key: str) -> Any:
        return m.IsEmptyCondition(is_empty=m.PayloadField(key=key))

    def at_most(self, key: str, value: int) -> Any:
        return m.FieldCondition(key=key, range=m.Range(lte=value))

    def filter(self, must: list[Any], should: list[Any], must_not: list[Any]) -> Any:
        return m.Filter(must=must or None, should=should or None, must_not=must_not or None)


_MODEL = _ClientFilters()


def client_filter(node: FilterNode) -> m.Filter:
    result: m.Filter = to_filter(node, _MODEL)
    return result


class _ServerCollection:
    """One collection of a region's Qdrant, created on first use."""

    default_collection: str

    def __init__(
        self,
        region: str,
        client: AsyncQdrantClient,
        *,
        collection: str | None = None,
        dense_size: int = DENSE_SIZE,
    ) -> None:
        self.region = region
        self.client = client
        self.collection = collection or self.default_collection
        self.dense_size = dense_size
        self._ready = False

    async def _create(self, **config: Any) -> bool:
        """Create the collection unless it exists; False when another process created it
        first (replicas and workers start together)."""
        if await self.client.collection_exists(self.collection):
            return False
        try:
            await self.client.create_collection(self.collection, **config)
        except UnexpectedResponse:
            if await self.client.collection_exists(self.collection):
                return False
            raise
        return True


class ServerVectorStore(_ServerCollection):
    """One region's chunks in one collection of that region's Qdrant."""

    default_collection = COLLECTION

    @classmethod
    def connect(
        cls, region: str, location: str, *, dense_size: int = DENSE_SIZE
    ) -> ServerVectorStore:
        """``location``: a Qdrant URL, or ``":memory:"`` / a directory for the local mode."""
        if location.startswith(("http://", "https://")):
            client = AsyncQdrantClient(url=location)
        elif location == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
        else:
            client = AsyncQdrantClient(path=location)
        return cls(region, client, dense_size=dense_size)

    @_outage_is_503
    async def ensure(self, ctx: TenantContext | None = None) -> None:
        if ctx is not None:
            check_region(self.region, ctx)
        if self._ready:
            return
        if await self._create(
            vectors_config={
                DENSE: m.VectorParams(size=self.dense_size, distance=m.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
        ):
            indexes: list[tuple[str, Any]] = [
                (
                    "tenant_id",
                    m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
                ),
                (
                    "classification",
                    m.IntegerIndexParams(type=m.IntegerIndexType.INTEGER, lookup=True, range=True),
                ),
                *((name, m.PayloadSchemaType.KEYWORD) for name in KEYWORD_FIELDS),
            ]
            for name, schema in indexes:
                await self.client.create_payload_index(
                    self.collection, name, field_schema=schema, wait=True
                )
        self._ready = True

    async def optimize(self) -> bool:
        return False  # the server's own optimizers index new segments in the background

    async def close(self) -> None:
        await self.client.close()

    async def _scoped(self, ctx: TenantContext) -> None:
        check_region(self.region, ctx)
        await self.ensure()

    @_outage_is_503
    async def upsert(self, ctx: TenantContext, points: Sequence[ChunkPoint]) -> None:
        await self._scoped(ctx)
        if not points:
            return
        built = [
            m.PointStruct(
                id=point_id(ctx.tenant_id, p.chunk_id),
                vector={
                    DENSE: list(p.dense),
                    SPARSE: m.SparseVector(
                        indices=list(p.sparse.indices), values=list(p.sparse.values)
                    ),
                },
                payload=chunk_payload(
                    ctx.tenant_id, p.document_id, p.chunk_id, p.ordinal, p.acl, p.metadata, p.sealed
                ),
            )
            for p in points
        ]
        await self.client.upsert(self.collection, points=built, wait=True)

    @_outage_is_503
    async def delete_document(self, ctx: TenantContext, document_id: str) -> None:
        await self._scoped(ctx)
        selector = m.FilterSelector(filter=client_filter(document_scope(ctx, document_id)))
        await self.client.delete(self.collection, points_selector=selector, wait=True)

    @_outage_is_503
    async def set_acl(self, ctx: TenantContext, document_id: str, acl: DocumentAcl) -> None:
        await self._scoped(ctx)
        await self.client.set_payload(
            self.collection,
            payload=acl_payload(acl),
            points=m.FilterSelector(filter=client_filter(document_scope(ctx, document_id))),
            wait=True,
        )

    @_outage_is_503
    async def search(
        self,
        ctx: TenantContext,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters | None = None,
        fusion: Fusion = FUSION,
    ) -> list[VectorHit]:
        check_search(limit, dense, sparse)
        await self._scoped(ctx)
        node = search_filter(ctx, filters)
        if isinstance(node, Never):
            return []
        allowed = client_filter(node)
        prefetch_limit = fusion.candidates(limit)
        prefetch = []
        if dense is not None:
            prefetch.append(
                m.Prefetch(query=list(dense), using=DENSE, limit=prefetch_limit, filter=allowed)
            )
        if sparse is not None and sparse.indices:
            prefetch.append(
                m.Prefetch(
                    query=m.SparseVector(indices=list(sparse.indices), values=list(sparse.values)),
                    using=SPARSE,
                    limit=prefetch_limit,
                    filter=allowed,
                    # IDF over this tenant's chunks only: no other tenant's vocabulary in scores.
                    params=m.SearchParams(
                        idf=m.IdfCorpusParams(corpus=client_filter(tenant_scope(ctx)))
                    ),
                )
            )
        response = await self.client.query_points(
            self.collection,
            prefetch=prefetch,
            query=(
                m.FusionQuery(fusion=m.Fusion.DBSF)
                if fusion.method == "dbsf"
                else m.RrfQuery(
                    rrf=m.Rrf(
                        k=fusion.k,
                        weights=fusion.weights(
                            dense is not None, sparse is not None and bool(sparse.indices)
                        ),
                    )
                )
            ),
            query_filter=allowed,
            limit=limit,
            with_payload=True,
        )
        return [checked_hit(ctx, p.payload, p.score) for p in response.points]

    @_outage_is_503
    async def best_similarity(
        self, ctx: TenantContext, dense: Sequence[float], filters: SearchFilters | None = None
    ) -> float | None:
        await self._scoped(ctx)
        node = search_filter(ctx, filters)
        if isinstance(node, Never):
            return None
        result = await self.client.query_points(
            self.collection,
            query=list(dense),
            using=DENSE,
            query_filter=client_filter(node),
            limit=1,
        )
        return checked_score(ctx, result.points[0].score) if result.points else None

    @_outage_is_503
    async def count(self, ctx: TenantContext, document_id: str | None = None) -> int:
        await self._scoped(ctx)
        node = tenant_scope(ctx) if document_id is None else document_scope(ctx, document_id)
        result = await self.client.count(
            self.collection, count_filter=client_filter(node), exact=True
        )
        return result.count


class ServerQuestionIndex(_ServerCollection):
    """The semantic cache's question vectors in the region's Qdrant (``bulwark_cache``)."""

    default_collection = CACHE_COLLECTION

    @classmethod
    def connect(
        cls, region: str, location: str, *, dense_size: int = DENSE_SIZE
    ) -> ServerQuestionIndex:
        store = ServerVectorStore.connect(region, location, dense_size=dense_size)
        return cls(region, store.client, dense_size=dense_size)

    async def _scoped(self, ctx: TenantContext) -> None:
        check_region(self.region, ctx)
        if self._ready:
            return
        if await self._create(
            vectors_config={DENSE: m.VectorParams(size=self.dense_size, distance=m.Distance.COSINE)}
        ):
            await self.client.create_payload_index(
                self.collection,
                "tenant_id",
                field_schema=m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
                wait=True,
            )
        self._ready = True

    @_outage_is_503
    async def put(self, ctx: TenantContext, entry_id: str, vector: Sequence[float]) -> None:
        await self._scoped(ctx)
        await self.client.upsert(
            self.collection,
            points=[
                m.PointStruct(
                    id=entry_id,
                    vector={DENSE: list(vector)},
                    payload={"tenant_id": str(ctx.tenant_id), "entry_id": entry_id},
                )
            ],
            wait=True,
        )

    @_outage_is_503
    async def nearest(
        self, ctx: TenantContext, vector: Sequence[float], *, limit: int, min_score: float
    ) -> list[tuple[str, float]]:
        await self._scoped(ctx)
        result = await self.client.query_points(
            self.collection,
            query=list(vector),
            using=DENSE,
            query_filter=client_filter(tenant_scope(ctx)),
            score_threshold=min_score,
            limit=limit,
            with_payload=True,
        )
        return [checked_entry(ctx, p.payload, p.score) for p in result.points]

    @_outage_is_503
    async def delete(self, ctx: TenantContext, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        await self._scoped(ctx)
        scope = client_filter(tenant_scope(ctx))
        only = m.FieldCondition(key="entry_id", match=m.MatchAny(any=list(entry_ids)))
        await self.client.delete(
            self.collection,
            points_selector=m.FilterSelector(filter=m.Filter(must=[scope, only])),
            wait=True,
        )

    async def close(self) -> None:
        await self.client.close()
