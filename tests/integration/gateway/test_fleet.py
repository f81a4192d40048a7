"""The gateway's Python API against real model servers on 127.0.0.1: fakellm (scripted replies,
injected 500/429) for fallback and circuit breaking, the recording peer for Retry-After, and
llama.cpp's own OpenAI-compatible server with SmolLM2 for real streamed tokens. Also: 200
concurrent requests against a dollar budget."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from gateway.adapters.base import ModelMessage
from gateway.repositories import CounterRepository
from gateway.services import Caller, GatewayRequest
from kernel.settings import GatewaySettings, ModelEndpointSettings, RouterSettings, Settings
from tests.peers.llm_peer import LlmPeer, Reply, RunningPeer, free_port
from tests.support.deployments import Deployment
from tests.support.gateway import Peers
from tests.support.tenants import Api, context_of

FAKELLM_RULES = """\
version: 1
rules:
  - name: broken
    when:
      model_matches: "broken*"
    respond:
      status: 500
      error: "injected outage"
  - name: throttled
    when:
      model_matches: "throttled*"
    respond:
      status: 429
      error: "injected rate limit"
  - name: scripted
    when:
      messages_contain: "capital"
    respond:
      content: "Paris."
"""


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_http(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("fakellm") / "fakellm.yaml"
    config.write_text(FAKELLM_RULES)
    port = free_port()
    process = subprocess.Popen(
        [Path(sys.executable).parent / "fakellm", "serve", "--port", str(port), "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/_fakellm/stats", process, 30)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def fleet(base: Settings, region: str, models: list[ModelEndpointSettings], **gw: Any) -> Settings:
    regions = dict(base.regions)
    regions[region] = regions[region].model_copy(update={"models": tuple(models)})
    options = {"router": RouterSettings(classifier="none"), "retry_base_delay_seconds": 0.01, **gw}
    return base.model_copy(update={"regions": regions, "gateway": GatewaySettings(**options)})


def mid(name: str, url: str, model: str, **extra: Any) -> ModelEndpointSettings:
    return ModelEndpointSettings(
        name=name,
        tier="mid",
        base_url=url,
        model=model,
        input_price_per_mtok=0.5,
        output_price_per_mtok=1.5,
        **extra,
    )


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    built: list[Runtime] = []
    yield built
    for runtime in built:
        await runtime.dispose()


def ask(text: str, model: str = "mid", **extra: Any) -> GatewayRequest:
    return GatewayRequest(messages=(ModelMessage("user", text),), model=model, **extra)


async def rule_counts(base: str) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{base}/_fakellm/stats")).json()["by_rule"])


async def test_fallback_and_circuit_breaker_against_fakellm(
    api: Api, deployment: Deployment, fakellm: str, runtimes: list[Runtime]
) -> None:
    tenant = await api.new_tenant("eu")
    settings = fleet(
        deployment.settings,
        "eu",
        [
            mid("fk-broken", fakellm, f"broken-{uuid.uuid4().hex[:6]}"),
            mid("fk-throttled", fakellm, f"throttled-{uuid.uuid4().hex[:6]}"),
            mid("fk-good", fakellm, "good"),
        ],
        breaker_failures=2,
        # Long enough that the five calls below all fall inside it on a loaded machine.
        breaker_cooldown_seconds=3.0,
        retries_per_endpoint=0,
    )
    runtime = Runtime.build(settings)
    runtimes.append(runtime)
    ctx = context_of(tenant)
    before = await rule_counts(fakellm)
    capital = ask("What is the capital of France?")
    results = [await runtime.gateway.complete(ctx, capital, Caller(None, None)) for _ in range(5)]
    assert [r.text for r in results] == ["Paris."] * 5
    assert {r.endpoint for r in results} == {"fk-good"}
    after = await rule_counts(fakellm)
    # Two failures each (500 and 429), then both breakers are open: no more calls reach them.
    assert after.get("broken", 0) - before.get("broken", 0) == 2
    assert after.get("throttled", 0) - before.get("throttled", 0) == 2

    await asyncio.sleep(3.2)  # past the cool-down: one half-open probe each, which fails again
    await runtime.gateway.complete(ctx, ask("What is the capital of France?"), Caller(None, None))
    await runtime.gateway.complete(ctx, ask("What is the capital of France?"), Caller(None, None))
    probed = await rule_counts(fakellm)
    assert probed.get("broken", 0) - after.get("broken", 0) == 1
    assert probed.get("throttled", 0) - after.get("throttled", 0) == 1


async def test_retry_after_is_honoured(
    api: Api, deployment: Deployment, runtimes: list[Runtime]
) -> None:
    tenant = await api.new_tenant("eu")
    with RunningPeer(LlmPeer(name="a")) as a, RunningPeer(LlmPeer(name="b")) as b:
        runtime = Runtime.build(
            fleet(
                deployment.settings,
                "eu",
                [mid("peer-a", a.base_url, "a"), mid("peer-b", b.base_url, "b")],
                max_retry_after_seconds=1.0,
            )
        )
        runtimes.append(runtime)
        ctx = context_of(tenant)
        # A short Retry-After: wait it out and retry the same endpoint.
        a.then(Reply(status=429, retry_after="0"))
        first = await runtime.gateway.complete(ctx, ask("hi"), Caller(None, None))
        assert first.endpoint == "peer-a" and len(a.requests) == 2 and b.requests == []
        # A long one: go elsewhere now, and leave A alone until it has passed.
        a.then(Reply(status=503, retry_after="120"))
        second = await runtime.gateway.complete(ctx, ask("hi"), Caller(None, None))
        third = await runtime.gateway.complete(ctx, ask("hi"), Caller(None, None))
        assert (second.endpoint, third.endpoint) == ("peer-b", "peer-b")
        assert len(a.requests) == 3


async def test_budget_holds_under_200_concurrent_requests(
    gw: Any, peers: Peers, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    budget_usd = 0.002
    await gw.client.put(
        "/v1/admin/quotas",
        json={
            "tenant": {"day": {"usd": budget_usd}},
            "requests": {"identity_per_minute": 100000, "tenant_per_minute": 100000},
        },
        headers=tenant.admin,
    )
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "mid", "max_tokens": 100}

    async def one() -> int:
        response = await gw.client.post(
            "/v1/gateway/chat/completions", json=body, headers=tenant.admin
        )
        assert response.status_code in (200, 429), response.text
        return response.status_code

    codes = await asyncio.gather(*(one() for _ in range(200)))
    assert codes.count(200) > 0 and codes.count(429) > 0
    usage = (await gw.client.get("/v1/usage", headers=tenant.admin)).json()
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
        day = f"d{time.strftime('%Y-%m-%d', time.gmtime())}"
        counter = await CounterRepository(session, ctx).get("tenant", day)
    assert counter is not None
    # Nothing is left reserved, and the ledger equals the sum of the settlements.
    assert counter.reserved_microdollars == 0 and counter.reserved_tokens == 0
    assert usage["total_cost_usd"] * 1_000_000 == pytest.approx(counter.used_microdollars)
    assert sum(item["calls"] for item in usage["items"]) == codes.count(200)
    # Never over budget by more than one request's reservation (ceil(5*0.5 + 100*1.5) µ$).
    assert counter.used_microdollars <= budget_usd * 1_000_000 + 153


async def test_real_tokens_stream_from_llama_cpp_server(
    api: Api, deployment: Deployment, runtimes: list[Runtime], tmp_path: Path
) -> None:
    from gateway.adapters.llamacpp import default_model_path

    port = free_port()
    process = _spawn(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            default_model_path(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "512",
        ]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/v1/models", process, 90)
        tenant = await api.new_tenant("eu")
        small = ModelEndpointSettings(
            name="llama-server",
            tier="small",
            base_url=base,
            model="smollm2",
            context_window=512,
            read_timeout_seconds=60,
        )
        runtime = Runtime.build(fleet(deployment.settings, "eu", [small]))
        runtimes.append(runtime)
        opened = await runtime.gateway.stream(
            context_of(tenant), ask("Say hello.", model="small", max_tokens=12), Caller(None, None)
        )
        events = [event async for event in opened.events]
        deltas = [e.text for e in events if e.kind == "delta"]
        assert len(deltas) >= 2 and "".join(deltas).strip()
        assert events[-1].kind == "done"
        assert events[-1].usage is not None and 0 < events[-1].usage.output_tokens <= 12
    finally:
        process.terminate()
        process.wait(timeout=20)
