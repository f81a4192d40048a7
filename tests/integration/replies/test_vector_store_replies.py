"""Vector-store replies that are not what was written. The server adapter (qdrant-client) is fed
truncated, empty, foreign and mis-shaped replies by a real HTTP server on 127.0.0.1; the embedded
adapter (Qdrant Edge in process) reads a shard holding points without the fields every chunk
carries, and a shard the engine no longer serves; and through the API, a search meets a chunk
whose sealed text does not open. Each is ``VectorStoreUnavailable`` — 503
``vector_store_unavailable`` with Retry-After — never a KeyError, JSONDecodeError or
AssertionError turned into a 500, and the store serves again once its replies are whole."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe

from app.runtime import Runtime
from auth.context import system_context
from kernel.tenancy import TenantContext, TenantRoute
from retrieval.acl import DocumentAcl, chunk_payload
from retrieval.errors import VectorStoreUnavailable
from retrieval.sparse import ANALYSER
from retrieval.vectorstore import DENSE, SPARSE, ChunkPoint, SparseVector
from retrieval.vectorstore.adapters.edge import EdgeQuestionIndex, EdgeVectorStore
from retrieval.vectorstore.adapters.server import ServerQuestionIndex, ServerVectorStore
from tests.peers.raw_http import RawHttpPeer, RawReply, RawRequest, cut
from tests.support.deployments import Deployment
from tests.support.documents import add
from tests.support.http import assert_problem
from tests.support.tenants import Api, context_of

pytestmark = [
    # The client asks the peer for its version first; this peer does not say.
    pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning"),
]

DIM = 384
CTX = system_context(TenantRoute(uuid.uuid4(), "t-vectors", "eu", "active"))
POINT = ChunkPoint(
    "c-1", str(uuid.uuid4()), 0, [0.1] * DIM, SparseVector([1], [1.0]), DocumentAcl("tenant")
)


def ok(result: Any) -> bytes:
    return json.dumps({"result": result, "status": "ok", "time": 0.001}).encode()


def scored(payload: Any, score: Any = 0.5) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "version": 1, "score": score, "payload": payload}


CHUNK = {"tenant_id": str(CTX.tenant_id), "chunk_id": "c-1", "document_id": POINT.document_id}
QUERY = ok({"points": [scored(CHUNK)]})
BROKEN = {
    "empty": RawReply(b""),
    "truncated": RawReply(QUERY[: len(QUERY) // 2]),
    "cut_with_the_connection": cut(RawReply(QUERY), len(QUERY) // 2),
    "ends_at_close_cut_short": RawReply(QUERY[:30], length=-1),
    "html": RawReply(b"<html><body>Proxy error</body></html>", content_type="text/html"),
    "not_utf8": RawReply(b'{"result": "\xff\xfe'),
    "no_result": RawReply(b'{"status": "ok", "time": 0.0}'),
    "null_result": RawReply(ok(None)),
    "result_of_another_shape": RawReply(ok({"rows": 3})),
    "collection_gone": RawReply(b'{"status": {"error": "Not found"}}', status=404),
    "refused": RawReply(b'{"status": {"error": "Bad request"}}', status=400),
    "error_page_5xx": RawReply(b"<html>Bad gateway</html>", status=502, content_type="text/html"),
}
# Points that came back without what every point of theirs carries.
BAD_POINTS = {
    "no_payload": scored(None),
    "no_chunk_id": scored({k: v for k, v in CHUNK.items() if k != "chunk_id"}),
    "chunk_id_not_text": scored({**CHUNK, "chunk_id": 7}),
    "no_document_id": scored({k: v for k, v in CHUNK.items() if k != "document_id"}),
    "another_tenant": scored({**CHUNK, "tenant_id": str(uuid.uuid4())}),
    "no_tenant": scored({k: v for k, v in CHUNK.items() if k != "tenant_id"}),
}

Call = Callable[[ServerVectorStore, ServerQuestionIndex], Awaitable[object]]
CALLS: dict[str, Call] = {
    "search": lambda vs, _: vs.search(CTX, [0.1] * DIM, SparseVector([1], [1.0]), 5),
    "best_similarity": lambda vs, _: vs.best_similarity(CTX, [0.1] * DIM),
    "count": lambda vs, _: vs.count(CTX),
    "upsert": lambda vs, _: vs.upsert(CTX, [POINT]),
    "delete_document": lambda vs, _: vs.delete_document(CTX, POINT.document_id),
    "set_acl": lambda vs, _: vs.set_acl(CTX, POINT.document_id, DocumentAcl("tenant")),
    "cache_nearest": lambda _, qi: qi.nearest(CTX, [0.1] * DIM, limit=3, min_score=0.1),
    "cache_put": lambda _, qi: qi.put(CTX, str(uuid.uuid4()), [0.1] * DIM),
}


def collections_exist(broken: RawReply) -> Callable[[RawRequest], RawReply]:
    """The collections are there (as after any first start); every other call is ``broken``."""

    def answer(request: RawRequest) -> RawReply:
        if request.path.endswith("/exists"):
            return RawReply(ok({"exists": True}))
        return broken

    return answer


async def served(answer: Callable[[RawRequest], RawReply], call: Call) -> RawHttpPeer:
    with RawHttpPeer(answer) as peer:
        store = ServerVectorStore.connect("eu", peer.base_url)
        questions = ServerQuestionIndex(region="eu", client=store.client)
        try:
            await call(store, questions)
        finally:
            await store.close()
    return peer


async def test_whole_replies_from_this_peer_are_read() -> None:
    with RawHttpPeer(collections_exist(RawReply(QUERY))) as peer:
        store = ServerVectorStore.connect("eu", peer.base_url)
        [hit] = await store.search(CTX, [0.1] * DIM, None, 5)
        assert (hit.chunk_id, hit.document_id, hit.score) == ("c-1", POINT.document_id, 0.5)
        assert await store.best_similarity(CTX, [0.1] * DIM) == 0.5
        await store.close()


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", BROKEN)
async def test_a_qdrant_reply_that_is_not_one_is_the_store_unavailable(
    case: str, call: str
) -> None:
    with pytest.raises(VectorStoreUnavailable) as raised:
        await served(collections_exist(BROKEN[case]), CALLS[call])
    assert raised.value.status == 503 and int(raised.value.headers["Retry-After"]) > 0


@pytest.mark.parametrize("case", BAD_POINTS)
async def test_a_search_hit_without_its_fields_is_the_store_unavailable(case: str) -> None:
    reply = RawReply(ok({"points": [scored(CHUNK), BAD_POINTS[case]]}))
    with pytest.raises(VectorStoreUnavailable):
        await served(collections_exist(reply), CALLS["search"])


@pytest.mark.parametrize("case", ["no_payload", "another_tenant", "no_entry_id"])
async def test_a_cached_question_without_its_fields_is_the_store_unavailable(case: str) -> None:
    entry = {"tenant_id": str(CTX.tenant_id), "entry_id": str(uuid.uuid4())}
    point = {
        "no_payload": scored(None),
        "another_tenant": scored({**entry, "tenant_id": str(uuid.uuid4())}),
        "no_entry_id": scored({"tenant_id": entry["tenant_id"]}),
    }[case]
    with pytest.raises(VectorStoreUnavailable):
        await served(collections_exist(RawReply(ok({"points": [point]}))), CALLS["cache_nearest"])


async def test_a_collection_deleted_under_the_store_is_made_again_on_the_next_call() -> None:
    gone = {"yes": True}

    def answer(request: RawRequest) -> RawReply:
        if request.path.endswith("/exists"):
            return RawReply(ok({"exists": not gone["yes"]}))
        if gone["yes"] and "/points/" in request.path:
            return BROKEN["collection_gone"]
        return RawReply(ok(True if request.method == "PUT" else {"count": 0}))

    with RawHttpPeer(answer) as peer:
        store = ServerVectorStore.connect("eu", peer.base_url)
        gone["yes"] = False
        await store.ensure()
        gone["yes"] = True
        with pytest.raises(VectorStoreUnavailable):
            await store.count(CTX)
        asked = len(peer.requests)
        gone["yes"] = False
        assert await store.count(CTX) == 0
        # It asked again whether the collection is there, rather than trusting its memory.
        assert any(r.path.endswith("/exists") for r in peer.requests[asked:])
        await store.close()


# --- Qdrant Edge, in process: the shard on disk is its reply ------------------------------


def edge_config() -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


def shard_holding(path: Path, payloads: list[dict[str, Any]]) -> None:
    """A shard at ``path`` whose points carry ``payloads`` (as a corrupt or foreign shard would),
    written by the engine itself and closed again."""
    path.mkdir(parents=True)
    shard = qe.EdgeShard.create(str(path), edge_config())
    points = [qe.Point(str(uuid.uuid4()), {DENSE: [0.1] * DIM}, payload) for payload in payloads]
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()


# Whole chunk payloads (the ACL fields included, so that the search filter admits them), less
# one field or with one of the wrong type.
STORED = chunk_payload(CTX.tenant_id, POINT.document_id, "c-1", 0, DocumentAcl("tenant"))
EDGE_BAD = {
    "no_chunk_id": {k: v for k, v in STORED.items() if k != "chunk_id"},
    "chunk_id_not_text": {**STORED, "chunk_id": 7},
    "no_document_id": {k: v for k, v in STORED.items() if k != "document_id"},
}


@pytest.mark.parametrize("case", EDGE_BAD)
async def test_an_edge_point_without_its_fields_is_the_store_unavailable(
    tmp_path: Path, case: str
) -> None:
    shard_holding(tmp_path / "vectors" / "shard", [STORED, EDGE_BAD[case]])
    store = EdgeVectorStore("eu", tmp_path / "vectors")
    try:
        with pytest.raises(VectorStoreUnavailable):
            await store.search(CTX, [0.1] * DIM, None, 5)
        assert await store.count(CTX) == 2  # the engine itself answers; its points are bad
    finally:
        await store.close()


async def test_an_edge_cache_entry_without_its_id_is_the_store_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vectors" / "cache"
    path.mkdir(parents=True)
    config = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)}
    )
    shard = qe.EdgeShard.create(str(path), config)
    point = qe.Point(str(uuid.uuid4()), {DENSE: [0.1] * DIM}, {"tenant_id": str(CTX.tenant_id)})
    shard.update(qe.UpdateOperation.upsert_points([point]))
    shard.flush()
    shard.close()
    questions = EdgeQuestionIndex("eu", tmp_path / "vectors")
    try:
        with pytest.raises(VectorStoreUnavailable):
            await questions.nearest(CTX, [0.1] * DIM, limit=3, min_score=0.1)
    finally:
        await questions.close()


async def test_an_edge_shard_the_engine_no_longer_serves_is_the_store_unavailable(
    tmp_path: Path,
) -> None:
    store = EdgeVectorStore("eu", tmp_path / "vectors")
    await store.upsert(CTX, [POINT])
    # The engine's shard closed under the store (as a failed disk or a lost lock leaves it).
    store._open().close()
    for call in (
        lambda: store.search(CTX, [0.1] * DIM, None, 5),
        lambda: store.count(CTX),
        lambda: store.upsert(CTX, [POINT]),
    ):
        with pytest.raises(VectorStoreUnavailable):
            await call()


# --- through the API: a chunk whose sealed text does not open ------------------------------


def planted_sealed(keys_sealed: str) -> dict[str, str]:
    return {
        "not_base64": "not base64 at all!",
        "not_an_envelope": base64.b64encode(b"BW" + b"\x00" * 40).decode(),
        "another_chunks_envelope": keys_sealed,
    }


@pytest.mark.parametrize("case", ["not_base64", "not_an_envelope", "another_chunks_envelope"])
async def test_a_search_meeting_a_chunk_that_does_not_open_is_a_503_until_it_is_gone(
    api: Api, runtime: Runtime, deployment: Deployment, case: str
) -> None:
    tenant = await api.new_tenant("eu")
    await add(api, tenant, "Travel", "Hotels in Paris cost up to 180 euros per night.")
    ctx: TenantContext = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        sealed = await runtime.keyring.for_tenant(session, ctx).seal(
            "chunk", "some-other-chunk", json.dumps({"text": "x", "heading_path": []}).encode()
        )
    planted_document = str(uuid.uuid4())
    terms = ANALYSER.query("hotel price in Paris")
    planted = ChunkPoint(
        "planted-1",
        planted_document,
        0,
        [0.05] * DIM,
        terms,
        DocumentAcl("tenant"),
        sealed=planted_sealed(base64.b64encode(sealed).decode())[case],
    )
    # The region's shard, shared with the app in this process: as if the store held this point.
    store = EdgeVectorStore("eu", deployment.settings.regions["eu"].vector_store)
    try:
        await store.upsert(ctx, [planted])
        query = {"query": "hotel price in Paris", "top_k": 10}
        refused = await api.client.post("/v1/search", json=query, headers=tenant.admin)
        body = assert_problem(refused, 503, "vector_store_unavailable")
        assert body["region"] == "eu" and int(refused.headers["retry-after"]) > 0
        await store.delete_document(ctx, planted_document)
        served = await api.client.post("/v1/search", json=query, headers=tenant.admin)
        assert served.status_code == 200, served.text
        assert "180 euros" in served.json()["hits"][0]["text"]
        assert "planted-1" not in served.text
    finally:
        await store.close()
