"""The fetcher for identity-provider URLs, against real servers on 127.0.0.1: only what the
policy allows is reached, no redirect is followed, and a body is capped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.adapters.egress_http import EgressFetcher, EgressUnavailable
from kernel.egress import EgressPolicy
from tests.peers.static_http import StaticHttp

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server() -> Iterator[StaticHttp]:
    with StaticHttp() as http:
        http.answer("/doc", b'{"ok": true}', **JSON)
        http.answer("/missing", b'{"ok": true}', 404, **JSON)
        http.answer("/big", b"x" * 4096, **JSON)
        http.answer("/redirect", b"", 302, Location="http://169.254.169.254/latest/meta-data")
        yield http


async def test_an_allow_listed_origin_is_reached_and_nothing_beside_it(
    server: StaticHttp,
) -> None:
    origin = server.origin
    fetcher = EgressFetcher(EgressPolicy.of(origins=[origin]))
    assert await fetcher.get_json(f"{origin}/doc") == {"ok": True}
    port = int(origin.rsplit(":", 1)[1])
    for other in (f"http://127.0.0.1:{port + 1}/doc", f"http://localhost:{port}/doc"):
        with pytest.raises(EgressUnavailable) as refused:
            await fetcher.get(other)
        assert refused.value.refused
    assert server.paths() == ["/doc"]


async def test_without_an_allowance_loopback_is_refused_before_any_connection(
    server: StaticHttp,
) -> None:
    origin = server.origin
    with pytest.raises(EgressUnavailable) as refused:
        await EgressFetcher(EgressPolicy.of(allow_http=True)).get(f"{origin}/doc")
    assert refused.value.reason == "egress_refused:loopback"
    assert server.paths() == []


async def test_redirects_are_not_followed_and_bodies_are_capped(
    server: StaticHttp,
) -> None:
    origin = server.origin
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
    assert server.paths() == ["/redirect", "/big", "/missing"]


async def test_an_answer_that_is_not_a_json_object_is_malformed(
    server: StaticHttp,
) -> None:
    origin = server.origin
    fetcher = EgressFetcher(EgressPolicy.of(origins=[origin]))
    with pytest.raises(EgressUnavailable) as malformed:
        await fetcher.get_json(f"{origin}/big")
    assert malformed.value.reason == "malformed"
