"""The knowledge index: from a document's bytes to searchable, sealed, ACL-tagged chunks, and
back from a query to the chunks the asker may read.

Ingest: parse → chunk (structure-aware, token-bounded) → DLP (per the tenant's policy,
personal data redacted, or the chunk tagged so that reading it needs PII clearance) → dense
embedding (ONNX MiniLM) and BM25 sparse vector → upsert into the tenant's region's
vector store with the ACL in the payload and the chunk text sealed under the tenant's keys.
Search: one hybrid query (dense + sparse prefetch, weighted RRF) with the ABAC filter inside it;
the hits' text is opened only after the store has decided what the asker may see. Both vectors
are built from the chunk with its document's title and heading path (``Chunk.index_text``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from opentelemetry import trace

from kernel.tenancy import TenantContext
from keys.services import TenantKeys
from residency.registry import RegionRegistry
from retrieval.acl import DocumentAcl, SearchFilters, with_pii
from retrieval.cache.index import QuestionIndex, open_question_index
from retrieval.chunking import Chunk, TokenCounter, chunk_blocks
from retrieval.embeddings import Embedder, SentenceVectors
from retrieval.errors import VectorStoreUnavailable
from retrieval.parsing import parse_document
from retrieval.sparse import ANALYSER
from retrieval.vectorstore import (
    FUSION,
    ChunkPoint,
    Fusion,
    VectorHit,
    VectorStore,
    open_vector_store,
)

CHUNK_KIND = "chunk"

# What a chunk's vectors are built from: 1 = heading path and text; 2 = the document's title,
# heading path and text (contextual indexing). Documents indexed under an older version are
# rebuilt by a re-index job (``POST /v1/documents/reindex``).
INDEX_VERSION = 2

_tracer = trace.get_tracer("bulwark.retrieval")
log = structlog.get_logger("bulwark.index")


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: str
    document_id: str
    score: float
    heading_path: list[str]
    text: str


async def _passage(ctx: TenantContext, keys: TenantKeys, hit: VectorHit, sealed: str) -> Passage:
    """The passage a hit's sealed payload holds. A hit whose document id is not one, or whose
    payload does not open to a text and a heading path (not base64, cut short, altered, or
    sealed for another chunk), came from a store that did not return what was written: that
    store is unavailable (503), never a 500."""
    try:
        uuid.UUID(hit.document_id)
        body = json.loads(
            await keys.open(CHUNK_KIND, hit.chunk_id, base64.b64decode(sealed, validate=True))
        )
        text, heading_path = body["text"], body["heading_path"]
    except (ValueError, KeyError, TypeError):  # EnvelopeError, binascii.Error are ValueErrors
        text = heading_path = None
    if not isinstance(text, str) or not (
        isinstance(heading_path, list) and all(isinstance(h, str) for h in heading_path)
    ):
        log.error("vector_store_chunk_unreadable", region=ctx.region)
        raise VectorStoreUnavailable(ctx.region)
    return Passage(hit.chunk_id, hit.document_id, hit.score, heading_path, text)


class ChunkScrubber(Protocol):
    """The DLP step of ingest (``dlp.services.IngestScrubber``): each text as it may be indexed,
    with the entity types found in it that the tenant's policy tags rather than redacts."""

    tag_classification: int | None

    async def scrub(self, texts: list[str]) -> list[tuple[str, frozenset[str]]]: ...


async def dlp_step(
    chunks: list[Chunk], acl: DocumentAcl, scrubber: ChunkScrubber | None
) -> list[tuple[Chunk, DocumentAcl]]:
    """Each chunk after DLP, with the ACL it is indexed under: the document's, tightened by
    ``with_pii`` for a chunk holding tagged personal data. Headings are scanned too."""
    if scrubber is None or not chunks:
        return [(chunk, acl) for chunk in chunks]
    headings = sorted({h for chunk in chunks for h in chunk.heading_path})
    scanned = await scrubber.scrub([c.text for c in chunks] + headings)
    heading_of = dict(zip(headings, scanned[len(chunks) :], strict=True))
    result = []
    for chunk, (text, tagged) in zip(chunks, scanned[: len(chunks)], strict=True):
        path = tuple(heading_of[h][0] for h in chunk.heading_path)
        types = set(tagged).union(*(heading_of[h][1] for h in chunk.heading_path))
        result.append(
            (
                dataclasses.replace(chunk, text=text, heading_path=path),
                with_pii(acl, types, scrubber.tag_classification),
            )
        )
    return result


class KnowledgeIndex:
    def __init__(
        self,
        registry: RegionRegistry,
        embedder: Embedder,
        counter: TokenCounter,
        *,
        optimize_after: int = 2_000,
    ) -> None:
        self.registry = registry
        self.embedder = embedder
        # Sentence embeddings of retrieved chunks (evidence test, gate, extraction), per tenant.
        self.sentences = SentenceVectors(embedder)
        self.counter = counter
        self.optimize_after = optimize_after
        self._pending: dict[str, int] = {}
        self._optimizing: dict[str, asyncio.Task[None]] = {}
        self._questions: dict[str, QuestionIndex] = {}
        self._stores: dict[str, VectorStore] = {}
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    async def store(self, ctx: TenantContext) -> VectorStore:
        """The vector store of the tenant's own region (opened once, never another region's)."""
        region = ctx.region
        async with self._lock:
            store = self._stores.get(region)
            if store is None:
                store = open_vector_store(
                    region, self.registry.vector_store_for(ctx), dense_size=self.embedder.dimension
                )
                self._stores[region] = store
            if region not in self._ready:
                await store.ensure(ctx)
                self._ready.add(region)
        return store

    async def questions(self, ctx: TenantContext) -> QuestionIndex:
        """The semantic cache's question index of the tenant's own region (opened once)."""
        region = ctx.region
        async with self._lock:
            index = self._questions.get(region)
            if index is None:
                index = open_question_index(
                    region, self.registry.vector_store_for(ctx), dense_size=self.embedder.dimension
                )
                self._questions[region] = index
        return index

    async def ingest(
        self,
        ctx: TenantContext,
        keys: TenantKeys,
        *,
        document_id: uuid.UUID,
        version: int,
        title: str,
        data: bytes,
        media_type: str,
        acl: DocumentAcl,
        metadata: Mapping[str, str],
        scrubber: ChunkScrubber | None = None,
        reindex: bool = False,
    ) -> int:
        """Parse, chunk, scrub, embed and store one document version; the number of chunks.

        ``reindex``: the same version again (new index text, same chunks): its points are
        overwritten in place, so that searches never see the document missing meanwhile. Only
        when the new chunking has fewer chunks than the stored one is the old set removed first.
        """
        with _tracer.start_as_current_span("ingest.parse"):
            blocks = await asyncio.to_thread(parse_document, data, media_type)
            pieces = await asyncio.to_thread(chunk_blocks, blocks, self.counter)
        with _tracer.start_as_current_span("ingest.dlp"):
            chunks = await dlp_step(pieces, acl, scrubber)
        store = await self.store(ctx)
        if not reindex or await store.count(ctx, str(document_id)) > len(chunks):
            # A new version replaces the old one: its chunks go, then the new ones come.
            await store.delete_document(ctx, str(document_id))
        if not chunks:
            return 0
        # Contextual indexing: title and heading path go into both vectors, not into the text.
        indexed = [c.index_text(title) for c, _ in chunks]
        with _tracer.start_as_current_span("ingest.embed") as span:
            span.set_attribute("bulwark.chunks", len(chunks))
            dense = await self.embedder.embed_async(indexed)
        points = []
        for (chunk, chunk_acl), vector, text in zip(chunks, dense, indexed, strict=True):
            chunk_id = f"{document_id}:{version}:{chunk.ordinal}"
            body = json.dumps({"text": chunk.text, "heading_path": list(chunk.heading_path)})
            sealed = await keys.seal(CHUNK_KIND, chunk_id, body.encode())
            terms = ANALYSER.document(text)
            points.append(
                ChunkPoint(
                    chunk_id=chunk_id,
                    document_id=str(document_id),
                    ordinal=chunk.ordinal,
                    dense=vector.tolist(),
                    sparse=terms,
                    acl=chunk_acl,
                    metadata=dict(metadata),
                    sealed=base64.b64encode(sealed).decode(),
                )
            )
        with _tracer.start_as_current_span("ingest.upsert"):
            for start in range(0, len(points), 256):
                await store.upsert(ctx, points[start : start + 256])
        self.record_writes(region=ctx.region, store=store, points=len(points))
        return len(points)

    def record_writes(self, *, region: str, store: VectorStore, points: int) -> None:
        """Schedule the store's optimizer once enough points arrived since its last run.

        Qdrant Edge indexes nothing by itself: new points sit in an unindexed appendable segment
        that every search scans (bench.vectorstore: 11.7 ms p50 at 100k before, 5.3 ms after).
        One optimization per region runs at a time, in the background, off the event loop;
        searches keep being served meanwhile.
        """
        self._pending[region] = self._pending.get(region, 0) + points
        running = self._optimizing.get(region)
        if self._pending[region] < self.optimize_after or (running and not running.done()):
            return
        pending, self._pending[region] = self._pending[region], 0
        self._optimizing[region] = asyncio.create_task(self._optimize(region, store, pending))

    async def _optimize(self, region: str, store: VectorStore, pending: int) -> None:
        try:
            if await store.optimize():
                log.info("vector_store_optimized", region=region, points=pending)
                return
        except Exception as exc:  # an optimizer failure must not fail ingestion
            log.warning("vector_store_optimize_failed", region=region, error=type(exc).__name__)
        # Nothing was due yet (the engine indexes a segment once it is large enough) or it
        # failed: the points still count, so the next write tries again.
        self._pending[region] = self._pending.get(region, 0) + pending

    async def wait_optimized(self) -> None:
        """Wait for background optimizations (tests, benchmarks, shutdown)."""
        await asyncio.gather(*self._optimizing.values(), return_exceptions=True)

    async def set_acl(self, ctx: TenantContext, document_id: uuid.UUID, acl: DocumentAcl) -> None:
        await (await self.store(ctx)).set_acl(ctx, str(document_id), acl)

    async def delete(self, ctx: TenantContext, document_id: uuid.UUID) -> None:
        await (await self.store(ctx)).delete_document(ctx, str(document_id))

    async def count(self, ctx: TenantContext, document_id: uuid.UUID | None = None) -> int:
        return await (await self.store(ctx)).count(ctx, str(document_id) if document_id else None)

    async def search(
        self,
        ctx: TenantContext,
        keys: TenantKeys,
        query: str,
        *,
        top_k: int,
        filters: Mapping[str, str] | None = None,
        vector: Sequence[float] | None = None,
        fusion: Fusion = FUSION,
    ) -> list[Passage]:
        """``vector``: the query's embedding when the caller already has it (chat embeds the
        question once for the cache and the search); ``fusion``: how its two rankings join."""
        dense = (
            list(vector)
            if vector is not None
            else (await self.embedder.embed_async([query]))[0].tolist()
        )
        terms = ANALYSER.query(query)
        sparse = terms if terms.indices else None
        hits = await (await self.store(ctx)).search(
            ctx, dense, sparse, top_k, SearchFilters(metadata=dict(filters or {})), fusion
        )
        passages = []
        for hit in hits:
            sealed = hit.payload.get("sealed")
            if not isinstance(sealed, str):
                continue
            passages.append(await _passage(ctx, keys, hit, sealed))
        return passages

    async def best_similarity(
        self,
        ctx: TenantContext,
        vector: Sequence[float],
        filters: Mapping[str, str] | None = None,
    ) -> float | None:
        """Cosine of the closest chunk the asker may read (None: nothing readable at all)."""
        return await (await self.store(ctx)).best_similarity(
            ctx, vector, SearchFilters(metadata=dict(filters or {}))
        )

    async def close(self) -> None:
        await self.wait_optimized()
        for index in self._questions.values():
            await index.close()
        for store in self._stores.values():
            await store.close()
