"""A Qdrant REST peer: the part of Qdrant's HTTP API that ``ServerVectorStore`` speaks, served
over real HTTP by one process and backed by qdrant-client's own local engine.

No Qdrant server can be installed on these machines (no registry ships its binary), yet a
deployment with separate API and worker processes needs one vector store that every process
reaches over the network: an embedded Qdrant Edge shard belongs to the one process that opened
it. This peer is that shared store for the multi-process load harness (``make loadtest``) and
for tests of the server adapter over HTTP. Requests are parsed with qdrant-client's own REST
models and executed by ``AsyncQdrantClient(":memory:")`` (brute force: fit for thousands of
points, not for benchmarks of search speed). A route it does not know answers 404 with Qdrant's
error shape, so drift in the adapter shows up as a failure rather than a silent no-op.

    python -m tests.peers.qdrant_peer --port 6333
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m

VERSION = "1.20.0"  # the REST API level of the qdrant-client the adapter is written against

_POINTS_INSERT: TypeAdapter[Any] = TypeAdapter(m.PointInsertOperations)
_POINTS_SELECTOR: TypeAdapter[Any] = TypeAdapter(m.PointsSelector)

Route = Callable[["QdrantPeer", str, dict[str, Any], dict[str, str]], Awaitable[Any]]


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=False)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class QdrantPeer:
    def __init__(self) -> None:
        self.port = 0
        self.engine = AsyncQdrantClient(location=":memory:")
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

    async def exists(self, name: str, _: dict[str, Any], __: dict[str, str]) -> Any:
        return {"exists": await self.engine.collection_exists(name)}

    async def create(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.CreateCollection.model_validate(body)
        return await self.engine.create_collection(
            name, vectors_config=spec.vectors, sparse_vectors_config=spec.sparse_vectors
        )

    async def index(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.CreateFieldIndex.model_validate(body)
        return await self.engine.create_payload_index(
            name, spec.field_name, field_schema=spec.field_schema, wait=True
        )

    async def upsert(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = _POINTS_INSERT.validate_python(body)
        points = spec.points if isinstance(spec, m.PointsList) else spec.batch
        return await self.engine.upsert(name, points=points, wait=True)

    async def delete(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        return await self.engine.delete(
            name, points_selector=_POINTS_SELECTOR.validate_python(body), wait=True
        )

    async def set_payload(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.SetPayload.model_validate(body)
        selector: Any = (
            spec.points if spec.points is not None else m.FilterSelector(filter=spec.filter)
        )
        return await self.engine.set_payload(
            name, payload=spec.payload, points=selector, key=spec.key, wait=True
        )

    async def query(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.QueryRequest.model_validate(body)
        return await self.engine.query_points(
            name,
            query=spec.query,
            using=spec.using,
            prefetch=spec.prefetch,
            query_filter=spec.filter,
            search_params=spec.params,
            limit=spec.limit or 10,
            offset=spec.offset,
            with_payload=spec.with_payload if spec.with_payload is not None else False,
            with_vectors=spec.with_vector if spec.with_vector is not None else False,
            score_threshold=spec.score_threshold,
        )

    async def count(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.CountRequest.model_validate(body)
        return await self.engine.count(
            name, count_filter=spec.filter, exact=spec.exact if spec.exact is not None else True
        )

    async def scroll(self, name: str, body: dict[str, Any], _: dict[str, str]) -> Any:
        spec = m.ScrollRequest.model_validate(body)
        points, offset = await self.engine.scroll(
            name,
            scroll_filter=spec.filter,
            limit=spec.limit or 10,
            offset=spec.offset,
            with_payload=spec.with_payload if spec.with_payload is not None else True,
            with_vectors=spec.with_vector if spec.with_vector is not None else False,
        )
        return {"points": _dump(points), "next_page_offset": offset}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
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
                    result = _dump(await route(self, matched.group(1), payload, {}))
                    status, error = 200, None
                except (ValidationError, ValueError, KeyError) as exc:
                    # Qdrant answers 409 to creating a collection that exists.
                    status = 409 if "already exists" in str(exc) else 400
                    error = f"Bad request: {type(exc).__name__}: {exc}"
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
