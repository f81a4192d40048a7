"""Both vector-store adapters against real engines: Qdrant Edge in process, and qdrant-client's
local mode (the server adapter's code path), and the server adapter over HTTP against the Qdrant
REST peer on Qdrant's Edge engine (``tests/peers/qdrant_peer.py``, the shared store of the
multi-process load run). Searches must return exactly what the reference
policy allows: the ACL filter runs inside the query, so there is nothing to post-filter."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from kernel.tenancy import TenantContext, TenantRoute
from residency.registry import RegionRegistry
from retrieval.acl import DocumentAcl, SearchFilters, may_read
from retrieval.chunking import TokenCounter
from retrieval.embeddings import Embedder
from retrieval.errors import VectorStoreRegionMismatch, VectorStoreUnavailable
from retrieval.index import KnowledgeIndex
from retrieval.vectorstore import (
    FUSION,
    ChunkPoint,
    Fusion,
    SparseVector,
    VectorStore,
    open_vector_store,
)
from retrieval.vectorstore.adapters.edge import EdgeVectorStore
from retrieval.vectorstore.adapters.server import ServerVectorStore
from tests.peers.llm_peer import RunningPeer
from tests.peers.qdrant_peer import QdrantPeer
from tests.retrieval_world import World, principal, random_world

# qdrant-client's local mode warns that it ignores payload indexes: expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
    # The client asks a server it cannot reach for its version first.
    pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning"),
]

DIM = 384
ADAPTERS = ["edge", "server", "server-http"]


def vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def sparse(rng: random.Random) -> SparseVector:
    indices = sorted(rng.sample(range(200), 5))
    return SparseVector(indices, [rng.uniform(0.1, 2.0) for _ in indices])


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    with contextlib.ExitStack() as stack:
        if request.param == "edge":
            vs: VectorStore = EdgeVectorStore("eu", tmp_path / "vectors")
        elif request.param == "server":
            vs = ServerVectorStore.connect("eu", ":memory:")
        else:
            peer = stack.enter_context(RunningPeer(QdrantPeer()))
            vs = ServerVectorStore.connect("eu", peer.base_url)
        await vs.ensure()
        yield vs
        await vs.close()


async def load(store: VectorStore, world: World, rng: random.Random) -> None:
    by_tenant: dict[uuid.UUID, list[ChunkPoint]] = {}
    for doc in world.documents:
        by_tenant.setdefault(doc.tenant.id, []).extend(
            ChunkPoint(chunk, doc.document_id, i, vector(rng), sparse(rng), doc.acl, doc.metadata)
            for i, chunk in enumerate(doc.chunks)
        )
    for route in world.tenants:
        await store.upsert(principal(route, user_id=None), by_tenant[route.id])


def allowed(world: World, ctx: TenantContext, lang: str | None = None) -> set[str]:
    return {
        chunk
        for doc in world.documents
        if may_read(ctx, doc.acl, doc.tenant.id) and lang in (None, doc.metadata["lang"])
        for chunk in doc.chunks
    }


async def chunk_ids(
    store: VectorStore, ctx: TenantContext, rng: random.Random, limit: int, **kw: object
) -> list[str]:
    hits = await store.search(ctx, vector(rng), sparse(rng), limit, **kw)  # type: ignore[arg-type]
    return [hit.chunk_id for hit in hits]


@pytest.mark.parametrize(
    "fusion",
    [FUSION, Fusion(method="rrf"), Fusion(method="rrf", dense_weight=2.0, depth=100)],
    ids=["default", "rrf", "weighted-rrf"],
)
async def test_search_returns_exactly_what_the_policy_allows(
    store: VectorStore, fusion: Fusion
) -> None:
    world = random_world(seed=7)
    rng = random.Random(7)
    await load(store, world, rng)
    total = sum(len(doc.chunks) for doc in world.documents)
    seen_some = 0
    for ctx in world.principals:
        got = await chunk_ids(store, ctx, rng, total, fusion=fusion)
        assert len(got) == len(set(got))
        assert set(got) == allowed(world, ctx), ctx.user_id
        seen_some += bool(got)
    # The world is not degenerate: many principals see something, and nobody sees everything.
    assert seen_some > len(world.principals) // 3


async def test_metadata_filters_only_narrow(store: VectorStore) -> None:
    world = random_world(seed=11, users=10, documents=30)
    rng = random.Random(11)
    await load(store, world, rng)
    for ctx in world.principals:
        got = await chunk_ids(store, ctx, rng, 500, filters=SearchFilters(metadata={"lang": "fr"}))
        assert set(got) == allowed(world, ctx, lang="fr")
        everything = [doc.document_id for doc in world.documents]
        named = await chunk_ids(
            store, ctx, rng, 500, filters=SearchFilters(document_ids=everything)
        )
        assert set(named) == allowed(world, ctx)


async def test_set_acl_takes_effect_on_the_next_search(store: VectorStore) -> None:
    rng = random.Random(3)
    route = TenantRoute(uuid.uuid4(), "acme", "eu", "active")
    group, member, admin = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ctx = principal(route, user_id=member, groups=frozenset({group}))
    acl = DocumentAcl(groups=(str(group),), users=(str(admin),), owner=str(admin))
    await store.upsert(
        ctx, [ChunkPoint(f"c{i}", "doc", i, vector(rng), sparse(rng), acl) for i in range(3)]
    )
    assert set(await chunk_ids(store, ctx, rng, 10)) == {"c0", "c1", "c2"}

    await store.set_acl(ctx, "doc", DocumentAcl(users=(str(admin),), owner=str(admin)))

    assert await chunk_ids(store, ctx, rng, 10) == []
    assert await store.count(ctx, "doc") == 3
    owner = principal(route, user_id=admin)
    assert set(await chunk_ids(store, owner, rng, 10)) == {"c0", "c1", "c2"}


async def test_delete_document_removes_every_chunk(store: VectorStore) -> None:
    rng = random.Random(5)
    route = TenantRoute(uuid.uuid4(), "acme", "eu", "active")
    ctx = principal(route, user_id=uuid.uuid4())
    everyone = DocumentAcl(visibility="tenant")
    points = [
        ChunkPoint(f"{d}-{i}", d, i, vector(rng), sparse(rng), everyone)
        for d in ("a", "b")
        for i in range(4)
    ]
    await store.upsert(ctx, points)
    assert await store.count(ctx, "a") == 4

    await store.delete_document(ctx, "a")

    assert await store.count(ctx, "a") == 0
    assert await store.count(ctx) == 4
    assert {c.split("-")[0] for c in await chunk_ids(store, ctx, rng, 50)} == {"b"}


async def test_other_tenants_chunks_never_come_back(store: VectorStore) -> None:
    rng = random.Random(9)
    a = TenantRoute(uuid.uuid4(), "a", "eu", "active")
    b = TenantRoute(uuid.uuid4(), "b", "eu", "active")
    ctx_a = principal(a, user_id=uuid.uuid4(), clearance=3)
    ctx_b = principal(b, user_id=uuid.uuid4(), clearance=3)
    same, terms = vector(rng), sparse(rng)
    everyone = DocumentAcl(visibility="tenant")
    await store.upsert(ctx_a, [ChunkPoint("shared-id", "doc", 0, same, terms, everyone)])
    # Tenant B sends the same chunk id and vector: it gets its own point, A's is untouched.
    await store.upsert(
        ctx_b,
        [ChunkPoint("shared-id", "doc", 0, same, terms, everyone, {"owner": "b"})],
    )

    hits_b = await store.search(ctx_b, same, terms, 10)
    assert [(h.chunk_id, h.payload["tenant_id"]) for h in hits_b] == [("shared-id", str(b.id))]
    hits_a = await store.search(ctx_a, same, terms, 10)
    assert [h.payload["tenant_id"] for h in hits_a] == [str(a.id)]
    assert hits_a[0].payload["meta"] == {}

    # B cannot delete or re-label A's document through its own context.
    await store.set_acl(ctx_b, "doc", DocumentAcl())
    await store.delete_document(ctx_b, "doc")
    assert await store.count(ctx_a, "doc") == 1
    assert [h.chunk_id for h in await store.search(ctx_a, same, terms, 10)] == ["shared-id"]
    assert await store.count(ctx_b) == 0


async def test_a_store_refuses_contexts_of_another_region(store: VectorStore) -> None:
    rng = random.Random(1)
    us = principal(TenantRoute(uuid.uuid4(), "us-co", "us", "active"), user_id=uuid.uuid4())
    with pytest.raises(VectorStoreRegionMismatch):
        await store.search(us, vector(rng), None, 5)
    with pytest.raises(VectorStoreRegionMismatch):
        await store.upsert(us, [])
    with pytest.raises(VectorStoreRegionMismatch):
        await store.count(us)


async def test_edge_shard_persists_across_reopen(tmp_path: Path) -> None:
    rng = random.Random(2)
    route = TenantRoute(uuid.uuid4(), "acme", "eu", "active")
    ctx = principal(route, user_id=uuid.uuid4())
    first = open_vector_store("eu", str(tmp_path / "v"))
    await first.upsert(
        ctx, [ChunkPoint("c", "d", 0, vector(rng), sparse(rng), DocumentAcl(visibility="tenant"))]
    )
    await first.close()
    second = open_vector_store("eu", str(tmp_path / "v"))
    try:
        assert await second.count(ctx) == 1
        assert [h.chunk_id for h in await second.search(ctx, vector(rng), None, 5)] == ["c"]
    finally:
        await second.close()


async def test_bulk_writes_get_the_edge_shard_indexed_in_the_background(tmp_path: Path) -> None:
    """Edge has no background optimizer: the knowledge index runs it once enough points arrived,
    and searches keep answering (correctly) while it runs."""
    rng = random.Random(3)
    route = TenantRoute(uuid.uuid4(), "acme", "eu", "active")
    ctx = principal(route, user_id=uuid.uuid4())
    store = EdgeVectorStore("eu", tmp_path / "v")
    index = KnowledgeIndex(
        cast(RegionRegistry, None),
        cast(Embedder, None),
        cast(TokenCounter, None),
        optimize_after=5_000,
    )
    try:
        total = 8_000
        for start in range(0, total, 500):
            points = [
                ChunkPoint(
                    f"c{i}",
                    f"d{i // 10}",
                    i,
                    vector(rng),
                    sparse(rng),
                    DocumentAcl(visibility="tenant"),
                )
                for i in range(start, start + 500)
            ]
            await store.upsert(ctx, points)
            index.record_writes(region="eu", store=store, points=len(points))
        probe = vector(rng)
        during = [h.chunk_id for h in await store.search(ctx, probe, None, 5)]
        await index.wait_optimized()
        info = store._open().info()
        # Unoptimized, Edge reports one indexed vector per point (a plain, scanned index);
        # the optimizer's HNSW segment adds its own on top.
        assert info.indexed_vectors_count > total, info
        assert await store.count(ctx) == total
        assert [h.chunk_id for h in await store.search(ctx, probe, None, 5)] == during
    finally:
        await index.close()
        await store.close()


async def test_best_similarity_only_sees_what_the_reader_may_read(store: VectorStore) -> None:
    rng = random.Random(4)
    route = TenantRoute(uuid.uuid4(), "acme", "eu", "active")
    team = uuid.uuid4()
    member = principal(route, user_id=uuid.uuid4(), groups=frozenset({team}))
    outsider = principal(route, user_id=uuid.uuid4())
    probe = vector(rng)
    await store.upsert(
        member,
        [ChunkPoint("c", "d", 0, probe, sparse(rng), DocumentAcl(groups=(str(team),)))],
    )
    best = await store.best_similarity(member, probe)
    assert best is not None and best > 0.99
    assert await store.best_similarity(outsider, probe) is None


async def test_processes_creating_the_collection_together_all_succeed() -> None:
    # API replicas and workers reach a fresh Qdrant at once: losing the race to create the
    # collection is not an error.
    with RunningPeer(QdrantPeer()) as peer:
        stores = [ServerVectorStore.connect("eu", peer.base_url) for _ in range(4)]
        try:
            await asyncio.gather(*(s.ensure() for s in stores))
            ctx = principal(TenantRoute(uuid.uuid4(), "t", "eu", "active"), user_id=None)
            assert [await s.count(ctx) for s in stores] == [0, 0, 0, 0]
        finally:
            for s in stores:
                await s.close()


async def test_an_unreachable_qdrant_is_unavailable_not_an_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    store = ServerVectorStore.connect("eu", url)
    ctx = principal(TenantRoute(uuid.uuid4(), "t", "eu", "active"), user_id=None)
    try:
        with pytest.raises(VectorStoreUnavailable):
            await store.search(ctx, [0.1] * DIM, None, 5)
    finally:
        await store.close()
