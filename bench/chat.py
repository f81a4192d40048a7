"""Chat figures, printed as one JSON document.

- ``overhead``: the end-to-end latency of ``POST /v1/chat`` minus the model's own time, against a
  zero-latency model server (``tests/peers/llm_peer.py``) — authentication, DLP in, cache lookup,
  retrieval (query embedding, filtered hybrid search, sealed text), prompt, gateway (admission,
  routing, ledger), DLP out, groundedness, session and audit writes — p50/p99 at concurrency 1
  and 16, with DLP and the cache on. Every question differs by a number, so each one passes
  through the cache (and is verified as a near miss) and reaches the model;
- ``cache``: lookup latency (exact hit, semantic hit, miss) and, on the labelled pairs of
  ``bench/data/cache-pairs.json``, hit precision (hits that were right to hit) and hit rate (share
  of same-answer pairs served from the cache) at the default threshold, through the real cache
  (MiniLM embedding, Qdrant Edge question index, verification, ACL check).

The load generator, the model server and the API share this machine's cores.

    python -m bench.chat [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import httpx

from bench._server import (
    UNLIMITED_GATEWAY,
    embedded_server,
    model_peer,
    percentiles,
)

TRAVEL = """# Travel policy

## Hotels

Employees may book hotels up to 180 euros per night in Paris and 140 euros elsewhere.

## Trains

First class is allowed for journeys longer than four hours.

## Meals

Meals are reimbursed up to 35 euros per day when travelling.
"""
ANSWER = "Employees may book hotels up to 180 euros per night in Paris [1]."


async def _chat_load(
    base: str, key: str, *, n: int, concurrency: int, offset: int
) -> tuple[list[float], int]:
    samples: list[float] = []
    errors = 0
    counter = iter(range(offset, offset + n))
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                body = {"message": f"What is the hotel limit per night in Paris for {i} nights?"}
                started = time.perf_counter()
                response = await c.post("/v1/chat", json=body)
                samples.append(time.perf_counter() - started)
                if response.status_code != 200 or response.json()["cache"] != "miss":
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, errors


async def _model_only(peer: str, n: int) -> list[float]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    samples = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(n):
            started = time.perf_counter()
            await client.post(f"{peer}/v1/chat/completions", json=body)
            samples.append(time.perf_counter() - started)
    return samples


def overhead(requests: int) -> dict[str, Any]:
    def fleet(region: str) -> list[dict[str, Any]]:
        return [
            {
                "name": f"{region}-{tier}",
                "tier": tier,
                "base_url": peer_url,
                "model": f"{tier}-model",
                "max_concurrency": 64,
            }
            for tier in ("small", "mid", "frontier")
        ]

    with model_peer(ANSWER) as peer_url, embedded_server(UNLIMITED_GATEWAY, models=fleet) as server:
        eu = next(t for t in server["credentials"]["tenants"].values() if t["region"] == "eu")
        admin = next(u["api_key"] for u in eu["users"] if "tenant_admin" in u["roles"])
        return asyncio.run(_measure(server["base_url"], peer_url, admin, requests))


async def _measure(base: str, peer: str, key: str, requests: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        doc = await client.post(
            "/v1/documents",
            json={"title": "Travel policy", "text": TRAVEL, "acl": {"visibility": "tenant"}},
        )
        job = doc.json()["job_id"]
        for _ in range(600):
            if (await client.get(f"/v1/jobs/{job}")).json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
    model = percentiles(await _model_only(peer, 100))
    results: dict[str, Any] = {"model_alone": model}
    offset = 0
    for concurrency in (1, 16):
        await _chat_load(base, key, n=10, concurrency=1, offset=10_000 + offset)  # warm
        samples, errors = await _chat_load(
            base, key, n=requests, concurrency=concurrency, offset=offset
        )
        offset += requests
        total = percentiles(samples)
        results[f"c{concurrency}"] = {
            "requests": requests,
            "errors_or_cache_hits": errors,
            "end_to_end": total,
            "overhead_p50_ms": round(total["p50_ms"] - model["p50_ms"], 2),
            "overhead_p99_ms": round(total["p99_ms"] - model["p99_ms"], 2),
        }
    return results


async def cache_figures() -> dict[str, Any]:
    """The cache on Bulwark's own pairs (issue #8's figures); ``bench/cache.py`` reports the
    public set and the breakdown per kind."""
    from bench.cache import cache_figures as figures
    from bench.cache import load

    _, pairs = load("own")
    report = await figures(pairs)
    served = report["served"]
    return {
        "pairs": served["pairs"],
        "same_answer_pairs": served["same_answer"],
        "threshold": report["threshold"],
        "hits": served["hits"],
        "hit_precision": served["precision"],
        "hit_rate": served["recall"],
        "lookup_exact_hit": report["lookup_exact_hit"],
        "lookup_semantic_hit": report["lookup_semantic_hit"],
        "lookup_miss": report["lookup_miss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    report = {
        "benchmark": "chat",
        "cpu_count": os.cpu_count(),
        "note": "load generator, model server and API share the machine's cores",
        "targets": {"overhead_p50_ms": 30, "hit_precision": 0.97},
        "overhead": overhead(args.requests),
        "cache": asyncio.run(cache_figures()),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
