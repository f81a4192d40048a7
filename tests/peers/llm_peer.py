"""A scriptable model server for gateway tests and benchmarks (a peer, not a mock of our code).

It speaks OpenAI's chat completions (JSON and SSE streaming, with ``stream_options``) and
Anthropic's Messages API (JSON and streaming events) over real HTTP. Tests script the next
replies (status codes, ``Retry-After``, a stream that breaks after N tokens) and read back what
reached it: that is how fallback, Retry-After and region pinning are observed from outside.
Where fakellm covers a case (scripted replies, injected 429/500) the tests use fakellm itself;
this peer covers what fakellm cannot (Retry-After headers, broken streams, Anthropic streams
with errors, recording). Run in a thread by tests, or as a process for ``bench/gateway.py`` and
the load harness, which scripts a 5xx burst with ``POST /_peer/script {"status", "count"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import uvicorn


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


@dataclass
class Reply:
    status: int = 200
    text: str | None = None
    retry_after: str | None = None
    break_after: int | None = None  # stream: tokens sent before an error event
    delay: float = 0.0  # seconds before the reply starts (a slow model)
    # The body as is, whatever was asked (a truncated, empty or foreign reply), with this type.
    raw: bytes | None = None
    content_type: str = "application/json"
    cut_after: int | None = None  # stream: tokens sent before the body ends, with no end marker
    cut_mid_event: bool = True  # ... in the middle of an event, or between two


@dataclass
class LlmPeer:
    name: str = "peer"
    text: str = "Paris is the capital of France."
    # Replies by requested model name (when no scripted reply says otherwise).
    by_model: dict[str, str] = field(default_factory=dict)
    script: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> LlmPeer:
        self.script.extend(replies)
        return self

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path = scope["path"]
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if path == "/_peer/script":
            # Scripting from another process (the load harness): the next ``count`` replies.
            self.then(*(Reply(status=int(payload["status"])) for _ in range(int(payload["count"]))))
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.requests.append(
            {
                "path": path,
                "model": payload.get("model"),
                "stream": bool(payload.get("stream")),
                "messages": payload.get("messages"),
                "credential": headers.get("authorization") or headers.get("x-api-key"),
                "traceparent": headers.get("traceparent"),
            }
        )
        reply = self.script.popleft() if self.script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            sent = [(b"content-type", b"application/json")]
            if reply.retry_after is not None:
                sent.append((b"retry-after", reply.retry_after.encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": sent})
            await send({"type": "http.response.body", "body": b'{"error":{"message":"scripted"}}'})
            return
        if reply.raw is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", reply.content_type.encode())],
                }
            )
            await send({"type": "http.response.body", "body": reply.raw})
            return
        words = (reply.text or self.by_model.get(payload.get("model"), self.text)).split(" ")
        prompt = sum(len(str(m.get("content", "")).split()) for m in payload.get("messages", []))
        anthropic = path.endswith("/messages")
        if not payload.get("stream"):
            text = " ".join(words)
            if anthropic:
                result: dict[str, Any] = {
                    "id": "msg_peer",
                    "type": "message",
                    "role": "assistant",
                    "model": payload.get("model"),
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": prompt, "output_tokens": len(words)},
                }
            else:
                result = {
                    "id": "chatcmpl-peer",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": payload.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": len(words),
                        "total_tokens": prompt + len(words),
                    },
                }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(result).encode()})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        async def event(data: dict[str, Any], name: str | None = None) -> None:
            head = f"event: {name}\n" if name else ""
            chunk = f"{head}data: {json.dumps(data)}\n\n".encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        if anthropic:
            await event(
                {"type": "message_start", "message": {"usage": {"input_tokens": prompt}}},
                "message_start",
            )
        for index, word in enumerate(words):
            if reply.cut_after is not None and index >= reply.cut_after:
                # The body ends there: no error event, no finish, no end marker.
                cut = b'data: {"id": "chatcmpl-peer", "choi' if reply.cut_mid_event else b""
                await send({"type": "http.response.body", "body": cut})
                return
            if reply.break_after is not None and index >= reply.break_after:
                if anthropic:
                    await event({"type": "error", "error": {"type": "overloaded_error"}}, "error")
                else:
                    await event({"error": {"message": "upstream broke"}})
                await send({"type": "http.response.body", "body": b""})
                return
            piece = word if index == 0 else " " + word
            if anthropic:
                await event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
            else:
                await event(
                    {
                        "id": "chatcmpl-peer",
                        "object": "chat.completion.chunk",
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                )
        if anthropic:
            await event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": len(words)},
                },
                "message_delta",
            )
            await event({"type": "message_stop"}, "message_stop")
        else:
            await event(
                {
                    "id": "chatcmpl-peer",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
            )
            if (payload.get("stream_options") or {}).get("include_usage"):
                await event(
                    {
                        "id": "chatcmpl-peer",
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": len(words),
                            "total_tokens": prompt + len(words),
                        },
                    }
                )
            await send(
                {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servable(Protocol):
    """An ASGI peer that is told the port it is served on."""

    port: int

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...


P = TypeVar("P", bound=Servable)


class RunningPeer(Generic[P]):
    """Serve a peer with uvicorn in a thread on 127.0.0.1 (``with RunningPeer(peer) as p:``)."""

    def __init__(self, peer: P) -> None:
        # The socket is bound here and handed to uvicorn: a port picked, closed and bound again
        # later could be taken in between by another server of the suite.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        peer.port = int(self.socket.getsockname()[1])
        self.peer = peer
        config = uvicorn.Config(
            peer, host="127.0.0.1", port=peer.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> P:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test model peer did not start")
            time.sleep(0.02)
        return self.peer

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a zero-latency model peer.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--text", default=LlmPeer.text, help="The reply to every request.")
    args = parser.parse_args()
    peer = LlmPeer(text=args.text)
    peer.port = args.port
    # Not recording in a long-running process: keep memory flat.
    peer.requests = _Discard()
    uvicorn.run(peer, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


class _Discard(list[dict[str, Any]]):
    def append(self, _: dict[str, Any]) -> None:
        return None


if __name__ == "__main__":
    main()
