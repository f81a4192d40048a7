"""The gateway through its HTTP API: routing, streaming, fallback, region pinning, quotas, rate
limits, BYO models, usage and batches, against model peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar

from kernel.egress import EgressPolicy
from tests.peers.llm_peer import Reply
from tests.support.gateway import CHAT, Peers, ask, sse, streamed_text
from tests.support.http import assert_problem
from tests.support.tenants import Api


async def test_completion_is_routed_and_explains_its_route(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    response = await gw.client.post(
        CHAT, json=ask("What is the capital of France?"), headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Paris is the capital of France."
    assert body["bulwark"]["tier"] == "small"
    assert body["bulwark"]["route_reason"] == "simple_question"
    assert response.headers["x-bulwark-tier"] == "small"
    assert body["usage"]["total_tokens"] > 0
    assert len(peers.eu_small.requests) == 1

    hard = await gw.client.post(
        CHAT,
        json=ask("Compare the trade-offs of these two architectures step by step."),
        headers=tenant.admin,
    )
    assert hard.json()["bulwark"]["tier"] == "frontier"
    assert peers.eu_frontier.requests[-1]["path"] == "/v1/messages"  # Anthropic provider

    named = await gw.client.post(CHAT, json=ask("hi", model="house-mid"), headers=tenant.admin)
    assert named.json()["bulwark"]["endpoint"] == "eu-mid-a"


async def test_streaming_relays_tokens_and_reports_usage(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    response = await gw.client.post(
        CHAT,
        json=ask(
            "Explain why the sky is blue", stream=True, stream_options={"include_usage": True}
        ),
        headers=tenant.admin,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert events[-1] == (None, "[DONE]")
    assert streamed_text(events) == "Paris is the capital of France."
    usage = [e for _, e in events if isinstance(e, dict) and e.get("usage")]
    assert usage and usage[0]["usage"]["completion_tokens"] == 6
    assert response.headers["x-bulwark-tier"] == "mid"


async def test_frontier_stream_over_anthropic_messages(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    response = await gw.client.post(
        CHAT, json=ask("Prove it", stream=True, model="frontier"), headers=tenant.admin
    )
    events = sse(response.text)
    assert streamed_text(events) == "Paris is the capital of France."
    assert peers.eu_frontier.requests[-1]["stream"] is True


async def test_stream_failing_before_first_token_falls_back(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    # One retry of the same endpoint, then the next endpoint of the tier.
    peers.eu_mid_a.then(Reply(status=500), Reply(status=502))
    response = await gw.client.post(
        CHAT, json=ask("hello", model="mid", stream=True), headers=tenant.admin
    )
    assert response.status_code == 200
    assert response.headers["x-bulwark-endpoint"] == "eu-mid-b"
    assert sse(response.text)[-1] == (None, "[DONE]")


async def test_stream_failing_after_first_token_sends_error_event_and_bills(
    gw: Api, peers: Peers
) -> None:
    tenant = await gw.new_tenant("eu")
    peers.eu_mid_a.then(Reply(break_after=2))
    response = await gw.client.post(
        CHAT, json=ask("hello", model="mid", stream=True), headers=tenant.admin
    )
    events = sse(response.text)
    name, error = events[-1]
    assert name == "error"
    assert isinstance(error, dict)
    assert error["error"]["code"] == "model_stream_server_error"
    assert error["usage"]["completion_tokens"] > 0
    # Only one endpoint was called: a started stream is never replayed elsewhere.
    assert len(peers.eu_mid_b.requests) == 0
    usage = await gw.client.get("/v1/usage", params={"group_by": "model"}, headers=tenant.admin)
    assert usage.json()["items"][0]["calls"] == 1
    assert usage.json()["total_tokens"] > 0


async def test_all_endpoints_failing_is_a_clear_503(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    peers.eu_small.then(Reply(status=503), Reply(status=503))
    response = await gw.client.post(CHAT, json=ask("hi", model="small"), headers=tenant.admin)
    body = assert_problem(response, 503, "model_unavailable")
    assert body["tier"] == "small"
    usage = await gw.client.get("/v1/usage", headers=tenant.admin)
    assert usage.json()["total_cost_usd"] == 0


async def test_a_tenant_in_eu_never_reaches_a_us_endpoint(gw: Api, peers: Peers) -> None:
    eu, us = await gw.new_tenant("eu"), await gw.new_tenant("us")
    for tier in ("small", "mid", "frontier"):
        assert (
            await gw.client.post(CHAT, json=ask("hi", model=tier), headers=eu.admin)
        ).status_code == 200
    # Even when every eu endpoint fails, nothing falls back across the region boundary.
    for peer in peers.eu():
        peer.then(*[Reply(status=500)] * 4)
    failed = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=eu.admin)
    assert_problem(failed, 503)
    assert peers.us.requests == []
    assert (
        await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=us.admin)
    ).status_code == 200
    assert [r["model"] for r in peers.us.requests] == ["us-mid-model"]


async def test_bad_input_is_a_4xx_problem(gw: Api) -> None:
    tenant = await gw.new_tenant("eu")
    for body, status in (
        ({"messages": []}, 400),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400),
        (ask("hi", model="gpt-17"), 422),
        (ask("hi", temperature=7), 400),
        (ask("x" * 60_000), 422),
    ):
        response = await gw.client.post(CHAT, json=body, headers=tenant.admin)
        assert_problem(response, status)
    assert_problem(await gw.client.post(CHAT, content=b"{", headers=tenant.admin), 400)
    assert_problem(await gw.client.post(CHAT, json=ask("hi")), 401)


async def test_quota_exhaustion_is_429_with_retry_after(gw: Api) -> None:
    tenant = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/quotas",
        json={"tenant": {"day": {"tokens": 300}}, "per_user": {"month": {"usd": 5.0}}},
        headers=tenant.admin,
    )
    assert put.status_code == 200, put.text
    assert put.json()["tenant"]["day"]["tokens"] == 300
    got = await gw.client.get("/v1/admin/quotas", headers=tenant.admin)
    assert got.json()["per_user"]["month"]["usd"] == 5.0
    # The worst case (input estimate + max_tokens) is reserved: 250 fits into 300 tokens...
    first = await gw.client.post(CHAT, json=ask("hi", max_tokens=250), headers=tenant.admin)
    assert first.status_code == 200
    # ...but after its 7 settled tokens, another 295-token worst case does not.
    denied = await gw.client.post(CHAT, json=ask("hi", max_tokens=295), headers=tenant.admin)
    body = assert_problem(denied, 429, "quota_exhausted")
    assert body["scope"] == "tenant" and body["period"] == "day"
    assert int(denied.headers["retry-after"]) > 0


async def test_request_rate_limit_per_identity(gw: Api) -> None:
    tenant = await gw.new_tenant("eu")
    await gw.client.put(
        "/v1/admin/quotas", json={"requests": {"identity_per_minute": 2}}, headers=tenant.admin
    )
    user = await gw.new_user(tenant)
    key = (await gw.new_key(tenant, user["id"]))["key"]
    member = {"Authorization": f"Bearer {key}"}
    codes = [
        (await gw.client.post(CHAT, json=ask("hi"), headers=member)).status_code for _ in range(3)
    ]
    # The config cache may let one more through on another replica; never more than the limit
    # plus what was already admitted.
    assert codes[:2] == [200, 200] and codes[2] == 429
    limited = await gw.client.post(CHAT, json=ask("hi"), headers=member)
    assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Another identity of the same tenant is not limited by this one's usage.
    assert (await gw.client.post(CHAT, json=ask("hi"), headers=tenant.admin)).status_code == 200


async def test_model_policy_pins_and_forbids(gw: Api) -> None:
    tenant = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/model-policy", json={"forbidden": ["frontier"]}, headers=tenant.admin
    )
    assert put.status_code == 200, put.text
    routed = await gw.client.post(
        CHAT, json=ask("Analyze the legal risk step by step"), headers=tenant.admin
    )
    assert routed.json()["bulwark"]["tier"] == "mid"
    assert routed.json()["bulwark"]["route_reason"].endswith("+policy_adjusted")
    assert_problem(
        await gw.client.post(CHAT, json=ask("hi", model="frontier"), headers=tenant.admin),
        403,
        "model_tier_forbidden",
    )
    await gw.client.put("/v1/admin/model-policy", json={"pinned": "small"}, headers=tenant.admin)
    pinned = await gw.client.post(CHAT, json=ask("Analyze this"), headers=tenant.admin)
    assert pinned.json()["bulwark"]["tier"] == "small"
    assert pinned.json()["bulwark"]["route_reason"] == "policy_pinned"


async def test_fallback_to_the_tier_the_policy_names(gw: Api, peers: Peers) -> None:
    tenant = await gw.new_tenant("eu")
    await gw.client.put("/v1/admin/model-policy", json={"fallback": "mid"}, headers=tenant.admin)
    peers.eu_frontier.then(Reply(status=500), Reply(status=500))
    response = await gw.client.post(CHAT, json=ask("hi", model="frontier"), headers=tenant.admin)
    assert response.status_code == 200, response.text
    assert response.json()["bulwark"]["endpoint"] == "eu-mid-a"
    assert response.json()["bulwark"]["fallbacks"] == 1


async def test_byo_model_replaces_a_tier_and_its_secret_is_never_returned(
    gw: Api, peers: Peers
) -> None:
    tenant = await gw.new_tenant("eu")
    other = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/byo-models/mid",
        json={
            "provider": "openai",
            "base_url": peers.byo.base_url,
            "model": "our-llama",
            "api_key": "sk-tenant-secret",
            "input_price_per_mtok": 0.2,
            "output_price_per_mtok": 0.2,
        },
        headers=tenant.admin,
    )
    assert put.status_code == 200, put.text
    assert "sk-tenant-secret" not in put.text and put.json()["has_api_key"] is True
    listed = await gw.client.get("/v1/admin/byo-models", headers=tenant.admin)
    assert "sk-tenant-secret" not in listed.text
    response = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=tenant.admin)
    assert response.json()["bulwark"]["endpoint"] == "byo-mid"
    assert peers.byo.requests[-1]["credential"] == "Bearer sk-tenant-secret"
    assert peers.byo.requests[-1]["model"] == "our-llama"
    # Another tenant still uses the region's mid tier.
    theirs = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=other.admin)
    assert theirs.json()["bulwark"]["endpoint"] == "eu-mid-a"
    assert_problem(
        await gw.client.delete("/v1/admin/byo-models/mid", headers=other.admin),
        404,
        "byo_model_not_found",
    )
    assert (
        await gw.client.delete("/v1/admin/byo-models/mid", headers=tenant.admin)
    ).status_code == 204


async def test_usage_report_groups_the_ledger(gw: Api) -> None:
    tenant = await gw.new_tenant("eu")
    for model in ("small", "mid", "mid"):
        await gw.client.post(CHAT, json=ask("hi", model=model), headers=tenant.admin)
    by_model = await gw.client.get("/v1/usage", params={"group_by": "model"}, headers=tenant.admin)
    calls = {item["key"]: item["calls"] for item in by_model.json()["items"]}
    assert calls == {"eu-small-model": 1, "eu-mid-a-model": 2}
    by_user = await gw.client.get("/v1/usage", params={"group_by": "user"}, headers=tenant.admin)
    assert [item["key"] for item in by_user.json()["items"]] == [tenant.admin_id]
    by_day = await gw.client.get("/v1/usage", params={"group_by": "day"}, headers=tenant.admin)
    assert by_day.json()["items"][0]["calls"] == 3
    assert_problem(
        await gw.client.get("/v1/usage", params={"group_by": "planet"}, headers=tenant.admin), 400
    )
    # Not a date as the OpenAPI document spells one (a pattern and format: date): 400.
    assert_problem(
        await gw.client.get("/v1/usage", params={"since": "yesterday"}, headers=tenant.admin), 400
    )


async def test_batch_runs_queued_at_batch_prices(gw: Api, gw_app: Any) -> None:
    tenant = await gw.new_tenant("eu")
    created = await gw.client.post(
        "/v1/gateway/batches",
        json={"requests": [ask("hi", model="mid"), ask("hello", model="mid")]},
        headers=tenant.admin,
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    for _ in range(100):
        batch = (
            await gw.client.get(f"/v1/gateway/batches/{batch_id}", headers=tenant.admin)
        ).json()
        if batch["status"] == "finished":
            break
        await asyncio.sleep(0.05)
    assert batch["status"] == "finished"
    assert [item["content"] for item in batch["items"]] == ["Paris is the capital of France."] * 2
    interactive = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=tenant.admin)
    # Same tokens, half the price on the batch track (the default batch price table).
    assert batch["items"][0]["cost_usd"] * 2 == interactive.json()["bulwark"]["cost_usd"]
    other = await gw.new_tenant("eu")
    assert_problem(
        await gw.client.get(f"/v1/gateway/batches/{batch_id}", headers=other.admin),
        404,
        "batch_not_found",
    )


async def test_byo_model_urls_that_lead_inside_are_refused_and_audited(gw: Api) -> None:
    """The deployment allow-lists only 127.0.0.0/8 (its test model servers): the cloud
    metadata address, private networks, IPv6 loopback, other spellings of them and URLs with
    credentials are refused at configuration time, nothing is stored, and each refusal is an
    audit event."""
    tenant = await gw.new_tenant("eu")
    refused = {
        "https://169.254.169.254/latest/meta-data": "link_local",
        "https://0xa9.0xfe.0xa9.0xfe/v1": "link_local",
        "https://10.0.0.5/v1": "private",
        "https://[fd00::5]/v1": "private",
        "https://[::1]:8080/v1": "loopback",
        "https://[::ffff:169.254.169.254]/v1": "link_local",
        "https://user:pw@models.example.com/v1": "credentials_in_url",
    }
    for url, reason in refused.items():
        response = await gw.client.put(
            "/v1/admin/byo-models/small",
            json={"provider": "openai", "base_url": url, "model": "m"},
            headers=tenant.admin,
        )
        assert_problem(response, 422, "egress_refused")
        assert response.json()["reason"] == reason, url
    listed = await gw.client.get("/v1/admin/byo-models", headers=tenant.admin)
    assert listed.json()["items"] == []
    events = await gw.client.get(
        "/v1/audit/events", params={"action": "egress.refused"}, headers=tenant.admin
    )
    items = events.json()["items"]
    assert len(items) == len(refused)
    assert {e["outcome"] for e in items} == {"denied"}
    assert {e["detail"]["reason"] for e in items} == set(refused.values())


async def test_a_byo_model_refused_at_call_time_is_never_reached_and_is_audited(
    gw: Api, gw_app: Litestar, peers: Peers
) -> None:
    """A BYO URL accepted when it was configured, then refused when called (the operator
    narrowed the allow-list; a DNS answer that changed is the same case): the call never
    reaches the endpoint, is not retried there, and the refusal is an audit event."""
    tenant = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/byo-models/mid",
        json={"provider": "openai", "base_url": peers.byo.base_url, "model": "our-llama"},
        headers=tenant.admin,
    )
    assert put.status_code == 200, put.text
    gateway = gw_app.state.runtime.gateway
    allowed = gateway.egress
    gateway.egress = EgressPolicy.of(allow_http=True)  # loopback no longer allow-listed
    try:
        response = await gw.client.post(CHAT, json=ask("hi", model="mid"), headers=tenant.admin)
    finally:
        gateway.egress = allowed
    # The call's settlement (and its audit events) runs after the reply; usage reads wait for it.
    await gw.client.get("/v1/usage", headers=tenant.admin)
    assert peers.byo.requests == []
    if response.status_code == 200:  # served by the fallback tier, never by the refused one
        assert response.json()["bulwark"]["endpoint"] != "byo-mid"
    else:
        assert_problem(response, 503)
    events = await gw.client.get(
        "/v1/audit/events", params={"action": "egress.refused"}, headers=tenant.admin
    )
    [event] = events.json()["items"]
    assert event["outcome"] == "denied"
    assert (event["detail"]["endpoint"], event["detail"]["reason"]) == ("byo-mid", "loopback")
