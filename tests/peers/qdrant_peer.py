"""A Qdrant REST peer: the part of Qdrant's HTTP API that ``ServerVectorStore`` speaks, served
over real HTTP by one process, on Qdrant's own engine (``qdrant-edge-py``, one shard per
collection).

No Qdrant server can be installed on these machines (no registry ships its binary), yet a
deployment with separate API and worker processes needs one vector store that every process
reaches over the network: an embedded Qdrant Edge shard belongs to the one process that opened
it. This peer is that shared store for the multi-process load harness (``make loadtest``) and
for tests of the server adapter over HTTP. Requests are parsed with qdrant-client's own REST
models and translated to the Edge engine (filters, hybrid prefetch with RRF or DBSF fusion, IDF
over a corpus filter, payload indexes). Like a server it optimizes segments in the background after
bulk writes. A route or a construct it does not know answers 404/400 with Qdrant's error shape,
so drift in the adapter shows up as a failure rather than a silent no-op.

    python -m tests.peers.qdrant_peer --port 6333
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import qdrant_edge as qe
import uvicorn
from pydantic import TypeAdapter, ValidationError
from qdrant_client import models as m

from tests.peers.llm_peer import read_body

VERSION = "1.20.0"  # the REST API level of the qdrant-client the adapter is written against
OPTIMIZE_EVERY = 2000  # points written between two background optimizations

_POINTS_INSERT: TypeAdapter[Any] = TypeAdapter(m.PointInsertOperations)
_POINTS_SELECTOR: TypeAdapter[Any] = TypeAdapter(m.PointsSelector)

Route = Callable[["QdrantPeer", str, dict[str, Any]], Awaitable[Any]]


class Unsupported(ValueError):
    """A request construct this peer does not translate (answered 400)."""


def _many(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return [_condition(c) for c in (value if isinstance(value, list) else [value])]


def edge_filter(spec: m.Filter | None) -> qe.Filter | None:
    if spec is None:
        return None
    return qe.Filter(
        must=_many(spec.must), should=_many(spec.should), must_not=_many(spec.must_not)
    )


def _required(spec: m.Filter) -> qe.Filter:
    return qe.Filter(
        must=_many(spec.must), should=_many(spec.should), must_not=_many(spec.must_not)
    )


def _condition(c: Any) -> Any:
    if isinstance(c, m.Filter):
        return edge_filter(c)
    if isinstance(c, m.IsEmptyCondition):
        return qe.IsEmptyCondition(c.is_empty.key)
    if isinstance(c, m.FieldCondition):
        match = c.match
        if isinstance(match, m.MatchValue):
            return qe.FieldCondition(c.key, match=qe.MatchValue(match.value))
        if isinstance(match, m.MatchAny):
            return qe.FieldCondition(c.key, match=qe.MatchAny(list(match.any)))  # type: ignore[arg-type]
        if isinstance(match, m.MatchExcept):
            return qe.FieldCondition(c.key, match=qe.MatchExcept(list(match.except_)))  # type: ignore[arg-type]
        if match is None and c.range is not None:
            r = c.range
            bounds = {k: None if v is None else float(v) for k, v in r.model_dump().items()}
            return qe.FieldCondition(c.key, range=qe.RangeFloat(**bounds))
    raise Unsupported(f"condition {c!r}")


def _vector(value: Any) -> Any:
    if isinstance(value, m.SparseVector):
        return qe.SparseVector(list(value.indices), list(value.values))
    if isinstance(value, list) and all(isinstance(x, int | float) for x in value):
        return [float(x) for x in value]
    raise Unsupported(f"vector {type(value).__name__}")


def _query(query: Any, using: str | None) -> Any:
    if query is None:
        return None
    if isinstance(query, m.RrfQuery):
        return qe.Fusion.Rrf(
            k=query.rrf.k if query.rrf.k is not None else 60, weights=query.rrf.weights
        )
    if isinstance(query, m.FusionQuery) and query.fusion == m.Fusion.RRF:
        return qe.Fusion.Rrf(k=60)
    if isinstance(query, m.FusionQuery) and query.fusion == m.Fusion.DBSF:
        return qe.Fusion.Dbsf()
    if isinstance(query, m.NearestQuery):
        query = query.nearest
    return qe.Query.Nearest(_vector(query), using=using)


def _params(params: m.SearchParams | None) -> qe.SearchParams | None:
    if params is None:
        return None
    idf = None
    if isinstance(params.idf, m.IdfCorpusParams):
        idf = qe.IdfParams(corpus=edge_filter(params.idf.corpus))
    elif params.idf is not None:
        raise Unsupported(f"idf {params.idf!r}")
    return qe.SearchParams(hnsw_ef=params.hnsw_ef, exact=bool(params.exact), idf=idf)


def _prefetch(spec: m.Prefetch) -> qe.Prefetch:
    inner = spec.prefetch
    nested = (
        [_prefetch(p) for p in (inner if isinstance(inner, list) else [inner])] if inner else None
    )
    return qe.Prefetch(
        limit=spec.limit or 10,
        query=_query(spec.query, spec.using),
        prefetches=nested,
        params=_params(spec.params),
        filter=edge_filter(spec.filter),
        score_threshold=spec.score_threshold,
    )


def _index(schema: Any) -> Any:
    if isinstance(schema, m.KeywordIndexParams):
        return qe.KeywordIndexParams(is_tenant=schema.is_tenant)
    if isinstance(schema, m.IntegerIndexParams):
        return qe.IntegerIndexParams(lookup=schema.lookup, range=schema.range)
    kinds = {
        m.PayloadSchemaType.KEYWORD: qe.PayloadSchemaType.Keyword,
        m.PayloadSchemaType.INTEGER: qe.PayloadSchemaType.Integer,
    }
    if schema in kinds:
        return kinds[schema]
    raise Unsupported(f"index {schema!r}")


def _point(p: Any, score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(p.id), "payload": p.payload, "vector": None}
    if score is not None:
        out.update(score=score, version=0)
    return out


class Collection:
    """One collection: an Edge shard, optimized in the background after bulk writes."""

    def __init__(self, path: Path, spec: m.CreateCollection) -> None:
        vectors = spec.vectors if isinstance(spec.vectors, dict) else {}
        distances = {
            m.Distance.COSINE: qe.Distance.Cosine,
            m.Distance.DOT: qe.Distance.Dot,
            m.Distance.EUCLID: qe.Distance.Euclid,
        }
        config = qe.EdgeConfig(
            vectors={
                name: qe.EdgeVectorParams(size=v.size, distance=distances[v.distance])
                for name, v in vectors.items()
            },
            sparse_vectors={
                name: qe.EdgeSparseVectorParams(
                    modifier=qe.Modifier.Idf if v.modifier == m.Modifier.IDF else None
                )
                for name, v in (spec.sparse_vectors or {}).items()
            },
        )
        self.shard = qe.EdgeShard.create(str(path), config)
        self.written = 0
        self.optimizing = threading.Lock()

    def update(self, operation: Any, points: int = 0) -> None:
        self.shard.update(operation)
        self.written += points
        if self.written >= OPTIMIZE_EVERY and self.optimizing.acquire(blocking=False):
            self.written = 0
            threading.Thread(target=self._optimize, daemon=True).start()

    def _optimize(self) -> None:
        try:
            self.shard.optimize()
        finally:
            self.optimizing.release()


_DONE = {"operation_id": 0, "status": "completed"}


class QdrantPeer:
    def __init__(self, root: Path | None = None) -> None:
        self.port = 0
        self.root = root or Path(tempfile.mkdtemp(prefix="qdrant-peer-"))
        self.collections: dict[str, Collection] = {}
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"^/collections/([^/]+)/exists$"), QdrantPeer.exists),
            ("PUT", re.compile(r"^/collections/([^/]+)$"), QdrantPeer.create),
            ("PUT", re.compile(r"^/collections/([^/]+)/index$"), QdrantPeer.index),
            ("PUT", re.compile(r"^/collections/([^/]+)/points$"), QdrantPeer.upsert),
            ("POST", re.compile(r"^/collections/([^/]+)/points/delete$"), QdrantPeer.delete),
            ("POST", re.compile(r"^/collections/([^/]+)/points/payload$"), QdrantPeer.set_payload),
            ("POST", re.compile(r"^/collections/([^/]+)/points/query$"), QdrantPeer.query),
            ("POST", re.compile(r"^/collections/([^/]+)/points/count$"), QdrantPeer.count),
            ("POST", re.compile(r"^/collections/([^/]+)/points/scroll$"), QdrantPeer.scroll),
        ]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _get(self, name: str) -> Collection:
        if name not in self.collections:
            raise LookupError(f"Collection `{name}` doesn't exist!")
        return self.collections[name]

    async def exists(self, name: str, _: dict[str, Any]) -> Any:
        return {"exists": name in self.collections}

    async def create(self, name: str, body: dict[str, Any]) -> Any:
        if name in self.collections:
            raise FileExistsError(f"Collection `{name}` already exists!")
        spec = m.CreateCollection.model_validate(body)
        path = self.root / name
        self.collections[name] = await asyncio.to_thread(Collection, path, spec)
        return True

    async def index(self, name: str, body: dict[str, Any]) -> Any:
        spec = m.CreateFieldIndex.model_validate(body)
        op = qe.UpdateOperation.create_field_index(spec.field_name, _index(spec.field_schema))
        await asyncio.to_thread(self._get(name).update, op)
        return _DONE

    async def upsert(self, name: str, body: dict[str, Any]) -> Any:
        spec = _POINTS_INSERT.validate_python(body)
        if not isinstance(spec, m.PointsList):
            raise Unsupported("a points batch")
        points = [
            qe.Point(
                str(p.id),
                {k: _vector(v) for k, v in (p.vector or {}).items()},  # type: ignore[union-attr]
                p.payload,
            )
            for p in spec.points
        ]
        op = qe.UpdateOperation.upsert_points(points)
        await asyncio.to_thread(self._get(name).update, op, len(points))
        return _DONE

    async def delete(self, name: str, body: dict[str, Any]) -> Any:
        selector = _POINTS_SELECTOR.validate_python(body)
        if isinstance(selector, m.FilterSelector):
            op = qe.UpdateOperation.delete_points_by_filter(_required(selector.filter))
        else:
            op = qe.UpdateOperation.delete_points([str(i) for i in selector.points])
        await asyncio.to_thread(self._get(name).update, op)
        return _DONE

    async def set_payload(self, name: str, body: dict[str, Any]) -> Any:
        spec = m.SetPayload.model_validate(body)
        if spec.filter is not None:
            op = qe.UpdateOperation.set_payload_by_filter(_required(spec.filter), spec.payload)
        else:
            op = qe.UpdateOperation.set_payload([str(i) for i in spec.points or []], spec.payload)
        await asyncio.to_thread(self._get(name).update, op)
        return _DONE

    async def query(self, name: str, body: dict[str, Any]) -> Any:
        spec = m.QueryRequest.model_validate(body)
        prefetch = spec.prefetch
        request = qe.QueryRequest(
            limit=spec.limit or 10,
            offset=spec.offset,
            query=_query(spec.query, spec.using),
            prefetches=[
                _prefetch(p) for p in (prefetch if isinstance(prefetch, list) else [prefetch])
            ]
            if prefetch
            else None,
            filter=edge_filter(spec.filter),
            score_threshold=spec.score_threshold,
            params=_params(spec.params),
            with_payload=bool(spec.with_payload),
        )
        points = await asyncio.to_thread(self._get(name).shard.query, request)
        return {"points": [_point(p, p.score) for p in points]}

    async def count(self, name: str, body: dict[str, Any]) -> Any:
        spec = m.CountRequest.model_validate(body)
        request = qe.CountRequest(exact=True, filter=edge_filter(spec.filter))
        return {"count": await asyncio.to_thread(self._get(name).shard.count, request)}

    async def scroll(self, name: str, body: dict[str, Any]) -> Any:
        spec = m.ScrollRequest.model_validate(body)
        request = qe.ScrollRequest(
            offset=spec.offset,
            limit=spec.limit or 10,
            filter=edge_filter(spec.filter),
            with_payload=True,
        )
        records, offset = await asyncio.to_thread(self._get(name).shard.scroll, request)
        return {
            "points": [_point(r) for r in records],
            "next_page_offset": None if offset is None else str(offset),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        status, result = 404, None
        error: str | None = f"Not found: {method} {path}"
        if method == "GET" and path == "/":
            status, error = 200, None
            result = {"title": "qdrant - vector search engine (peer)", "version": VERSION}
            await _reply(send, 200, result)
            return
        for verb, pattern, route in self.routes:
            matched = pattern.match(path)
            if verb == method and matched:
                try:
                    payload = json.loads(body) if body else {}
                    result = await route(self, matched.group(1), payload)
                    status, error = 200, None
                except FileExistsError as exc:
                    status, error = 409, f"Wrong input: {exc}"  # as Qdrant answers
                except LookupError as exc:
                    status, error = 404, f"Not found: {exc}"
                except (ValidationError, ValueError) as exc:
                    status, error = 400, f"Bad request: {type(exc).__name__}: {exc}"
                break
        envelope: dict[str, Any] = {"time": time.perf_counter() - started}
        if error is None:
            envelope.update(status="ok", result=result)
        else:
            envelope.update(status={"error": error}, result=None)
        await _reply(send, status, envelope)


async def _reply(send: Any, status: int, body: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a Qdrant REST peer on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(QdrantPeer(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
