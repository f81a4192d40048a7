"""An HTTP server on 127.0.0.1 that answers with exactly the bytes a test scripts.

The upstreams Bulwark talks to (KMS, S3, Qdrant, model servers) sometimes answer with something
that is not their protocol: a body cut short by a proxy, an empty 200, an HTML error page, JSON
without the fields the call must return, a connection closed mid-body. This peer is a real HTTP
server (``http.server``, one thread per connection) that serves such replies to the real vendor
clients (boto3, qdrant-client, aiohttp), so that what the adapters see is what a broken peer
sends, parsed by the same client code as in production.

``answer(request)`` picks the reply; ``requests`` records every request received. ``forward``
relays a request to a real peer (moto, a model server) and returns its reply, for an answer
that passes some requests through and breaks others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class RawReply:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/json"
    # The Content-Length sent: None for len(body); a larger number cuts the body mid-way (the
    # connection closes after ``body``); -1 for none (the body ends when the connection closes).
    length: int | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Scripted", "Connection: close"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        length = len(self.body) if self.length is None else self.length
        if length >= 0:
            lines.append(f"Content-Length: {length}")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


Answer = Callable[[RawRequest], RawReply]


def forward(request: RawRequest, base_url: str) -> RawReply:
    """``request`` sent on to the server at ``base_url``, and its reply as received (its body
    decoded: what was sent is re-framed here)."""
    framing = ("host", "connection", "content-length", "transfer-encoding")
    response = httpx.request(
        request.method,
        base_url + request.path,
        content=request.body,
        headers={k: v for k, v in request.headers.items() if k.lower() not in framing},
        timeout=30,
    )
    dropped = (*framing, "content-encoding", "content-type")
    kept = tuple((k, v) for k, v in response.headers.items() if k.lower() not in dropped)
    content_type = response.headers.get("content-type")
    return RawReply(response.content, response.status_code, content_type, None, kept)


def cut(reply: RawReply, at: int) -> RawReply:
    """``reply`` with its body cut after ``at`` bytes, the full length still declared."""
    return RawReply(
        reply.body[:at], reply.status, reply.content_type, len(reply.body), reply.headers
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" (boto3's uploads) at once

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        request = RawRequest(self.command, self.path, dict(self.headers.items()), self._body())
        peer = self.server.peer
        peer.requests.append(request)
        self.close_connection = True
        self.wfile.write(peer.answer(request).encode())
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, peer: RawHttpPeer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.peer = peer


class RawHttpPeer:
    """``with RawHttpPeer(answer) as peer:`` serves on ``peer.base_url`` until the block ends."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[RawRequest] = []
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RawHttpPeer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
