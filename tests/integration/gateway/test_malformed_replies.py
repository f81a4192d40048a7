"""Model replies that are not the protocol, through the gateway's HTTP API: a body cut short, an
empty 200, a proxy's HTML page, JSON without the fields a completion must carry, a stream that
ends mid-event. The endpoint counts as failed: the gateway falls back to the next one, and when
none is left the answer is a 503 problem with Retry-After, never a 500; nothing is billed for a
reply that never came, and the next request is served as usual."""

from __future__ import annotations

import pytest
from litestar import Litestar

from app.main import create_app
from tests.peers.llm_peer import Reply
from tests.support.deployments import Deployment
from tests.support.gateway import BROKEN, CHAT, Peers, ask, gateway_settings, sse, streamed_text
from tests.support.http import assert_problem
from tests.support.tenants import Api

ANSWER = "Paris is the capital of France."


@pytest.fixture(scope="module")
async def gw_app(deployment: Deployment, peers: Peers) -> Litestar:
    # Every test here fails endpoints on purpose: no circuit opens from one test to the next.
    return create_app(gateway_settings(deployment.settings, peers, breaker_failures=1000))


async def spent(gw: Api, headers: dict[str, str]) -> tuple[int, float]:
    usage = (await gw.client.get("/v1/usage", headers=headers)).json()
    return sum(item["calls"] for item in usage["items"]), usage["total_cost_usd"]


@pytest.mark.parametrize("broken", BROKEN)
async def test_a_malformed_reply_and_no_endpoint_left_is_a_503_with_retry_after(
    gw: Api, peers: Peers, broken: str
) -> None:
    tenant = await gw.new_tenant("eu")
    # The only small endpoint, on the call and on its retry.
    peers.eu_small.then(BROKEN[broken], BROKEN[broken])
    response = await gw.client.post(CHAT, json=ask("hi", model="small"), headers=tenant.admin)
    body = assert_problem(response, 503, "model_unavailable")
    assert body["tier"] == "small" and body["endpoints_tried"] == 2
    assert int(response.headers["retry-after"]) > 0
    assert len(peers.eu_small.requests) == 2
    assert (await spent(gw, tenant.admin))[1] == 0

    # The endpoint answers properly again: so does the gateway, and only that call is billed.
    again = await gw.client.post(CHAT, json=ask("hi", model="small"), headers=tenant.admin)
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["message"]["content"] == ANSWER
    assert (await spent(gw, tenant.admin))[1] == again.json()["bulwark"]["cost_usd"]


async def test_a_malformed_reply_falls_back_to_the_next_endpoint(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    peers.eu_mid_a.then(BROKEN["html"], BROKEN["truncated"])
    response = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=tenant.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == ANSWER
    assert body["bulwark"]["endpoint"] == "eu-mid-b" and body["bulwark"]["fallbacks"] == 1
    assert len(peers.eu_mid_a.requests) == 2 and len(peers.eu_mid_b.requests) == 1


async def test_an_anthropic_message_without_its_content_is_a_503(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    no_content = Reply(raw=b'{"type": "message", "role": "assistant", "stop_reason": "end_turn"}')
    peers.eu_frontier.then(no_content, BROKEN["empty"])
    response = await gw.client.post(CHAT, json=ask("hi", model="frontier"), headers=tenant.admin)
    assert_problem(response, 503, "model_unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert [r["path"] for r in peers.eu_frontier.requests] == ["/v1/messages"] * 2


async def test_a_stream_that_is_not_one_falls_back_before_its_first_token(
    gw: Api, peers: Peers
) -> None:
    tenant = await gw.new_tenant("eu")
    # JSON where an event stream was asked for, then an event stream with no event at all.
    peers.eu_mid_a.then(
        Reply(raw=b'{"choices": []}'), Reply(raw=b"", content_type="text/event-stream")
    )
    response = await gw.client.post(
        CHAT, json=ask("hello", model="mid", stream=True), headers=tenant.admin
    )
    assert response.status_code == 200
    assert response.headers["x-bulwark-endpoint"] == "eu-mid-b"
    events = sse(response.text)
    assert events[-1] == (None, "[DONE]")
    assert streamed_text(events) == ANSWER


@pytest.mark.parametrize("mid_event", [True, False], ids=["mid_event", "between_events"])
@pytest.mark.parametrize(("tier", "peer"), [("mid", "eu_mid_a"), ("frontier", "eu_frontier")])
async def test_a_stream_cut_short_ends_in_an_error_never_in_a_whole_answer(
    gw: Api, peers: Peers, tier: str, peer: str, mid_event: bool
) -> None:
    tenant = await gw.new_tenant("eu")
    getattr(peers, peer).then(Reply(cut_after=2, cut_mid_event=mid_event))
    response = await gw.client.post(
        CHAT, json=ask("hello", model=tier, stream=True), headers=tenant.admin
    )
    events = sse(response.text)
    name, error = events[-1]
    # Two tokens were relayed; the client is told the rest never came (no "stop", no [DONE]).
    assert name == "error" and isinstance(error, dict)
    assert error["error"]["code"] == "model_stream_bad_response"
    finishes = [
        e["choices"][0].get("finish_reason")
        for _, e in events
        if isinstance(e, dict) and e.get("choices")
    ]
    assert "stop" not in finishes and (None, "[DONE]") not in events
    # What was relayed is billed, once.
    calls, cost = await spent(gw, tenant.admin)
    assert calls == 1 and cost > 0

    # The next stream on that tier is whole.
    whole = await gw.client.post(
        CHAT, json=ask("hello", model=tier, stream=True), headers=tenant.admin
    )
    assert sse(whole.text)[-1] == (None, "[DONE]")
