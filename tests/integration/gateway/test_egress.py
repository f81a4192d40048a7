"""The egress guard at call time, on a real model server on 127.0.0.1: a BYO URL is checked
on the addresses each connection uses, whatever name leads there, and no redirect is followed."""

from __future__ import annotations

import pytest

from gateway.adapters.base import ModelMessage, ProviderError, ProviderRequest
from gateway.adapters.openai import OpenAIProvider
from kernel.egress import EgressBlocked, EgressPolicy, EgressRefused
from tests.peers.llm_peer import LlmPeer, RunningPeer

REQUEST = ProviderRequest(model="m", messages=(ModelMessage("user", "hi"),), max_tokens=8)


def provider(url: str, egress: EgressPolicy) -> OpenAIProvider:
    return OpenAIProvider(
        url, api_key=None, connect_timeout=2, read_timeout=5, max_connections=2, egress=egress
    )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "127.1"])
async def test_a_loopback_destination_is_refused_however_it_is_spelt(host: str) -> None:
    with RunningPeer(LlmPeer()) as peer:
        model = provider(f"http://{host}:{peer.port}", EgressPolicy.of(allow_http=True))
        with pytest.raises(ProviderError) as refused:
            await model.complete(REQUEST)
        await model.aclose()
        assert refused.value.detail == "egress_refused:loopback"
        assert peer.requests == []  # nothing reached the server


async def test_the_operator_allow_list_lets_the_same_call_through() -> None:
    with RunningPeer(LlmPeer()) as peer:
        model = provider(
            f"http://localhost:{peer.port}",
            EgressPolicy.of(networks=["127.0.0.0/8", "::1/128"], allow_http=True),
        )
        completion = await model.complete(REQUEST)
        await model.aclose()
        assert completion.text == peer.text
        assert len(peer.requests) == 1


async def test_plain_http_needs_the_operator() -> None:
    with RunningPeer(LlmPeer()) as peer:
        model = provider(f"http://127.0.0.1:{peer.port}", EgressPolicy.of(networks=["127.0.0.0/8"]))
        with pytest.raises(ProviderError) as refused:
            await model.complete(REQUEST)
        await model.aclose()
        assert refused.value.detail == "egress_refused:plain_http"


async def test_resolution_is_checked_on_every_address() -> None:
    # A name with several addresses is refused if any of them is.
    with pytest.raises(EgressBlocked) as blocked:
        await EgressPolicy().resolve("localhost", 443)
    assert blocked.value.reason == "loopback"
    with pytest.raises(EgressBlocked) as unknown:
        await EgressPolicy().resolve("no-such-host.invalid", 443)
    assert unknown.value.reason == "unresolvable"


@pytest.mark.parametrize(
    "url", ["https://hFX[", "https://T[r/x", "https://=-:Q0Ahdc'/realms/x", "https://a:99999/"]
)
async def test_a_url_that_does_not_parse_is_refused_not_an_error(url: str) -> None:
    """Found by the fuzzer: such URLs (schema-valid BYO, OIDC and metadata URLs) were a 500."""
    with pytest.raises(EgressRefused) as refused:
        await EgressPolicy.of(allow_http=True).check_destination(url)
    assert refused.value.code == "egress_refused"
