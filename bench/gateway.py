"""Gateway overhead and routing savings.

Starts a zero-latency model peer (``tests/peers/llm_peer.py``) and an embedded Bulwark server
whose eu fleet points at it, then measures, closed loop from this process:

- the added latency of ``POST /v1/gateway/chat/completions`` (auth, rate limit, quota
  reservation and settlement, routing, ledger, audit) over calling the peer directly, p50/p99,
  at concurrency 1 and 64, non-streaming and streaming (time to first byte);
- the same at one in flight with a tenant day quota to enforce (a reservation before each
  call, its settlement after);
- requests/s of the one API process;
- the cost of a mixed workload routed (``model: auto``) vs always ``frontier``.

The load generator, the peer and the server share the machine's cores (2 here, shared with other
work), so treat the figures as a floor for the server and an upper bound for the overhead.

    python -m bench.gateway [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import aiohttp
import httpx

from bench._server import UNLIMITED_GATEWAY, embedded_server, model_peer, percentiles

PRICES = {"small": (0.1, 0.4), "mid": (0.5, 1.5), "frontier": (3.0, 15.0)}
MIXED = (
    ["What is the capital of France?", "Define idempotency.", "hello", "How many days in May?"] * 6
    + ["Explain why the build failed.", "Summarize this paragraph for me."] * 3
    + ["Compare the trade-offs of both designs step by step.", "Analyze the legal risk."] * 2
)


def _fleet(peer: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"eu-{tier}",
            "tier": tier,
            "base_url": peer,
            "model": f"{tier}-model",
            "input_price_per_mtok": PRICES[tier][0],
            "output_price_per_mtok": PRICES[tier][1],
            "max_concurrency": 128,
        }
        for tier in ("small", "mid", "frontier")
    ]


async def _load(
    url: str, body: dict[str, Any], headers: dict[str, str], *, n: int, concurrency: int
) -> tuple[list[float], float, int]:
    """Closed loop: ``concurrency`` workers send ``n`` requests in all over ``concurrency``
    kept-alive connections. aiohttp rather than httpx drives the load: httpx's own pool costs
    several ms per request at 64 connections on two cores, which would be measured as latency
    of the direct calls and the gateway alike."""
    samples: list[float] = []
    errors = 0
    remaining = n
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as client:

        async def call() -> int:
            async with client.post(url, json=body) as response:
                await response.read()
                return response.status

        # Warm up at the measured concurrency, so that every connection (client to server,
        # server to peer) is open before the clock starts, for the direct calls and the
        # gateway alike: the figures are steady state, not connection set-up.
        for _ in range(2):
            await asyncio.gather(*(call() for _ in range(concurrency)))
        for _ in range(min(20, n)):
            await call()

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with client.post(url, json=body) as response:
                    if body.get("stream"):
                        await response.content.readany()
                        samples.append(time.perf_counter() - started)
                    await response.read()
                    if not body.get("stream"):
                        samples.append(time.perf_counter() - started)
                    errors += response.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return samples, time.perf_counter() - started, errors


async def _cost(url: str, headers: dict[str, str], model: str) -> tuple[float, dict[str, int]]:
    total, tiers = 0.0, {"small": 0, "mid": 0, "frontier": 0}
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        for prompt in MIXED:
            body = {"messages": [{"role": "user", "content": prompt}], "model": model}
            route = (await client.post(url, json=body)).json()["bulwark"]
            total += route["cost_usd"]
            tiers[route["tier"]] += 1
    return total, tiers


def _compare(
    direct: list[float], gateway: list[float], elapsed: float, errors: int
) -> dict[str, Any]:
    dp, gp = percentiles(direct), percentiles(gateway)
    return {
        "requests": len(gateway),
        "errors": errors,
        "direct": dp,
        "gateway": gp,
        "added_p50_ms": round(gp["p50_ms"] - dp["p50_ms"], 2),
        "added_p99_ms": round(gp["p99_ms"] - dp["p99_ms"], 2),
        "gateway_requests_per_s": round(len(gateway) / elapsed, 1),
    }


BODY = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "model": "small",
    "max_tokens": 64,
}


async def measure(base: str, peer: str, key: str, n: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    gateway = f"{base}/v1/gateway/chat/completions"
    direct = f"{peer}/v1/chat/completions"
    results: dict[str, Any] = {}
    for stream in (False, True):
        for concurrency in (1, 64):
            count = n if concurrency == 1 else n * 2
            body: dict[str, Any] = {**BODY, "stream": stream}
            peer_body = {**body, "model": "small-model"}
            d, _, _ = await _load(direct, peer_body, {}, n=count, concurrency=concurrency)
            g, elapsed, errors = await _load(gateway, body, auth, n=count, concurrency=concurrency)
            results[f"{'stream_ttfb' if stream else 'non_stream'}_c{concurrency}"] = _compare(
                d, g, elapsed, errors
            )
    # The same at one in flight with a budget to enforce: a tenant day quota (far from spent),
    # so each call reserves its worst case before the model and settles after it.
    quota = {"tenant": {"day": {"usd": 1_000_000}}}
    async with httpx.AsyncClient(headers=auth) as admin:
        put = await admin.put(f"{base}/v1/admin/quotas", json=quota)
        put.raise_for_status()
    d, _, _ = await _load(direct, {**BODY, "model": "small-model"}, {}, n=n, concurrency=1)
    g, elapsed, errors = await _load(gateway, BODY, auth, n=n, concurrency=1)
    results["non_stream_c1_quota"] = _compare(d, g, elapsed, errors)
    async with httpx.AsyncClient(headers=auth) as admin:
        (await admin.put(f"{base}/v1/admin/quotas", json={})).raise_for_status()

    routed, routed_tiers = await _cost(gateway, auth, "auto")
    frontier, _ = await _cost(gateway, auth, "frontier")
    results["mixed_workload_cost"] = {
        "requests": len(MIXED),
        "routed_usd": round(routed, 6),
        "always_frontier_usd": round(frontier, 6),
        "routed_share_of_frontier": round(routed / frontier, 3),
        "routed_tiers": routed_tiers,
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with (
        model_peer() as peer_url,
        embedded_server(
            UNLIMITED_GATEWAY, models=lambda region: _fleet(peer_url) if region == "eu" else []
        ) as server,
    ):
        tenants = server["credentials"]["tenants"]
        key = next(t["users"][0]["api_key"] for t in tenants.values() if t["region"] == "eu")
        results = asyncio.run(measure(server["base_url"], peer_url, key, args.requests))
    print(
        json.dumps(
            {
                "benchmark": "gateway",
                "cpu_count": os.cpu_count(),
                "note": "load generator, model peer and API server share the same (shared) cores",
                "targets": {"added_p50_ms": 2, "added_p99_ms": 10, "routed_share_of_frontier": 0.4},
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
