"""Filtered hybrid search on the embedded vector store (Qdrant Edge in process).

For each size, one tenant's chunks with random 384-d dense vectors and random sparse vectors;
10% of the documents are readable by the querying user (through a group), the rest restricted to
another group, and a second tenant holds as many points again (``--neighbour-fraction`` of
them). Each query is the production one: dense and sparse prefetch fused by RRF, with the tenant
+ ACL filter inside the query. Prints one JSON document with load time and search p50/p99 in
milliseconds, before and after the optimizer.

``--query-embedding`` adds the whole search as the API runs it (the labelled questions of
``bench.retrieval`` embedded with the MiniLM encoder, then the same filtered query): the measure of
issue #5's target.

    python -m bench.vectorstore [--sizes 10000 100000] [--queries 300] [--query-embedding]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from typing import Any

import numpy as np

from bench._server import bench_member
from kernel.tenancy import TenantContext, TenantRoute
from retrieval.acl import DocumentAcl
from retrieval.embeddings import Embedder
from retrieval.sparse import ANALYSER
from retrieval.vectorstore import DENSE_SIZE, FUSION, ChunkPoint, Fusion, SparseVector
from retrieval.vectorstore.adapters.edge import EdgeVectorStore

BATCH = 2000
CHUNKS_PER_DOC = 4
VOCABULARY = 30_000


def _context(route: TenantRoute, groups: set[uuid.UUID]) -> TenantContext:
    return bench_member(route, groups=groups)


def _sparse(rng: random.Random) -> SparseVector:
    indices = sorted(rng.sample(range(VOCABULARY), 12))
    return SparseVector(indices, [rng.uniform(0.2, 3.0) for _ in indices])


def _unit_vectors(gen: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
    v = gen.standard_normal((n, DENSE_SIZE), dtype=np.float32)
    unit: np.ndarray[Any, Any] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


async def _load(
    store: EdgeVectorStore, ctx: TenantContext, n: int, readable: DocumentAcl, other: DocumentAcl
) -> None:
    rng = random.Random(n)
    gen = np.random.default_rng(n)
    for start in range(0, n, BATCH):
        vectors = _unit_vectors(gen, min(BATCH, n - start))
        points = []
        for offset, dense in enumerate(vectors.tolist()):
            i = start + offset
            doc = i // CHUNKS_PER_DOC
            acl = readable if doc % 10 == 0 else other
            points.append(ChunkPoint(f"c{i}", f"d{doc}", i, dense, _sparse(rng), acl))
        await store.upsert(ctx, points)


def _summary(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    return {
        "p50_ms": round(statistics.median(timings), 3),
        "p99_ms": round(timings[max(int(len(timings) * 0.99) - 1, 0)], 3),
        "mean_ms": round(statistics.fmean(timings), 3),
    }


async def _queries(
    store: EdgeVectorStore, ctx: TenantContext, count: int, fusion: Fusion = FUSION
) -> dict[str, float]:
    rng = random.Random(1)
    gen = np.random.default_rng(1)
    dense = _unit_vectors(gen, count).tolist()
    timings = []
    for q in range(count):
        sparse = _sparse(rng)
        began = time.perf_counter()
        hits = await store.search(ctx, dense[q], sparse, 10, fusion=fusion)
        timings.append((time.perf_counter() - began) * 1000)
        assert len(hits) == 10
    return _summary(timings)


def _engine_only(
    store: EdgeVectorStore, ctx: TenantContext, count: int, fusion: Fusion = FUSION
) -> dict[str, float]:
    """The same queries, built beforehand and run on the Edge shard directly: the engine's own
    time, without Bulwark's filter compilation, thread hop and hit mapping."""
    rng = random.Random(1)
    gen = np.random.default_rng(1)
    dense = _unit_vectors(gen, count).tolist()
    requests = [
        store.query_request(ctx, dense[q], _sparse(rng), 10, fusion=fusion) for q in range(count)
    ]
    assert all(r is not None for r in requests)
    shard = store._open()
    timings = []
    for request in requests:
        began = time.perf_counter()
        shard.query(request)  # type: ignore[arg-type]  # checked above
        timings.append((time.perf_counter() - began) * 1000)
    return _summary(timings)


async def _queries_embedded(
    store: EdgeVectorStore,
    ctx: TenantContext,
    questions: list[str],
    embedder: Embedder,
    fusion: Fusion = FUSION,
) -> dict[str, float]:
    """The whole search as the API runs it: embed the question (MiniLM), build its BM25 vector,
    run the filtered hybrid query (the corpus vectors are random, the query costs are real)."""
    timings = []
    for question in questions:
        began = time.perf_counter()
        dense = (await embedder.embed_async([question]))[0].tolist()
        terms = ANALYSER.query(question)
        sparse = terms if terms.indices else None
        await store.search(ctx, dense, sparse, 10, fusion=fusion)
        timings.append((time.perf_counter() - began) * 1000)
    return _summary(timings)


async def _run(
    size: int,
    queries: int,
    questions: list[str] | None = None,
    embedder: Embedder | None = None,
    neighbour_fraction: float = 1.0,
    fusion: Fusion = FUSION,
) -> dict[str, Any]:
    group, other_group = uuid.uuid4(), uuid.uuid4()
    tenant = TenantRoute(uuid.uuid4(), "bench", "eu", "active")
    neighbour = TenantRoute(uuid.uuid4(), "neighbour", "eu", "active")
    reader = _context(tenant, {group})
    readable = DocumentAcl(groups=(str(group),))
    other = DocumentAcl(groups=(str(other_group),))
    with tempfile.TemporaryDirectory() as root:
        store = EdgeVectorStore("eu", root)
        await store.ensure()
        began = time.perf_counter()
        await _load(store, reader, size, readable, other)
        neighbour_size = round(size * neighbour_fraction)
        await _load(store, _context(neighbour, set()), neighbour_size, other, other)
        loaded = time.perf_counter() - began
        before = await _queries(store, reader, queries, fusion)
        began = time.perf_counter()
        await store.optimize()
        optimized = time.perf_counter() - began
        after = await _queries(store, reader, queries, fusion)
        engine = _engine_only(store, reader, queries, fusion)
        embedded = (
            await _queries_embedded(store, reader, questions, embedder, fusion)
            if questions and embedder
            else None
        )
        await store.close()
    return {
        "points_in_tenant": size,
        "points_in_shard": size + neighbour_size,
        "visible_fraction": 0.1,
        "load_s": round(loaded, 2),
        "optimize_s": round(optimized, 2),
        "search_unoptimized": before,
        "search_optimized": after,
        "engine_only_optimized": engine,
        **({"search_optimized_with_query_embedding": embedded} if embedded else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--query-embedding", action="store_true")
    # The second tenant's points, as a share of the first's (1.0: as many again).
    parser.add_argument("--neighbour-fraction", type=float, default=1.0)
    # Another fusion than the one in use, for an A/B of its cost on the same host.
    parser.add_argument("--fusion", choices=["rrf", "dbsf"], default=FUSION.method)
    args = parser.parse_args()
    fusion = Fusion(method=args.fusion)
    questions: list[str] | None = None
    embedder: Embedder | None = None
    if args.query_embedding:
        from bench.retrieval import labelled
        from retrieval.adapters.minilm import OnnxMiniLMEmbedder

        # Four passes over the 54 labelled questions: enough samples for a p99.
        questions = [question for question, _ in labelled()] * 4
        embedder = OnnxMiniLMEmbedder()
        embedder.load()
    report = {
        "engine": "qdrant-edge-py",
        "query": f"dense+sparse prefetch, {fusion.method} fusion, depth {fusion.depth} a side, "
        "tenant+ACL filter in query, limit 10",
        "fusion": fusion.method,
        "runs": [
            asyncio.run(
                _run(size, args.queries, questions, embedder, args.neighbour_fraction, fusion)
            )
            for size in args.sizes
        ],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
