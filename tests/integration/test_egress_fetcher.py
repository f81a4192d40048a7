"""The fetcher for identity-provider URLs, against real servers on 127.0.0.1: only what the
policy allows is reached, no redirect is followed, and a body is capped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from app.adapters.egress_http import EgressFetcher, EgressUnavailable
from app.egress import EgressPolicy


class _Handler(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 4096 if self.path == "/big" else b'{"ok": true}'
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def test_an_allow_listed_origin_is_reached_and_nothing_beside_it(
    server: tuple[str, list[str]],
) -> None:
    origin, seen = server
    fetcher = EgressFetcher(EgressPolicy.of(origins=[origin]))
    assert await fetcher.get_json(f"{origin}/doc") == {"ok": True}
    port = int(origin.rsplit(":", 1)[1])
    for other in (f"http://127.0.0.1:{port + 1}/doc", f"http://localhost:{port}/doc"):
        with pytest.raises(EgressUnavailable) as refused:
            await fetcher.get(other)
        assert refused.value.refused
    assert seen == ["/doc"]


async def test_without_an_allowance_loopback_is_refused_before_any_connection(
    server: tuple[str, list[str]],
) -> None:
    origin, seen = server
    with pytest.raises(EgressUnavailable) as refused:
        await EgressFetcher(EgressPolicy.of(allow_http=True)).get(f"{origin}/doc")
    assert refused.value.reason == "egress_refused:loopback"
    assert seen == []


async def test_redirects_are_not_followed_and_bodies_are_capped(
    server: tuple[str, list[str]],
) -> None:
    origin, seen = server
    fetcher = EgressFetcher(EgressPolicy.of(origins=[origin]), max_body=1024)
    with pytest.raises(EgressUnavailable) as redirected:
        await fetcher.get(f"{origin}/redirect")
    assert redirected.value.reason == "redirect"
    with pytest.raises(EgressUnavailable) as big:
        await fetcher.get(f"{origin}/big")
    assert big.value.reason == "too_large"
    with pytest.raises(EgressUnavailable) as missing:
        await fetcher.get_json(f"{origin}/missing")
    assert (missing.value.reason, missing.value.status) == ("status_404", 404)
    assert seen == ["/redirect", "/big", "/missing"]


async def test_an_answer_that_is_not_a_json_object_is_malformed(
    server: tuple[str, list[str]],
) -> None:
    origin, _ = server
    fetcher = EgressFetcher(EgressPolicy.of(origins=[origin]))
    with pytest.raises(EgressUnavailable) as malformed:
        await fetcher.get_json(f"{origin}/big")
    assert malformed.value.reason == "malformed"
