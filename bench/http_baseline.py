"""HTTP baseline: requests/s and latency percentiles for /healthz and an authenticated /v1/me.

Runs a bounded closed-loop load (fixed request count, fixed concurrency) from this process
against a fresh embedded server on 127.0.0.1 and prints one JSON document. The load generator
shares the machine's cores with the server, so treat the figures as a floor.

    python -m bench.http_baseline [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

import httpx

from bench._server import embedded_server


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def load(
    base_url: str, path: str, headers: dict[str, str], *, requests: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:
        for _ in range(min(100, requests)):  # warm-up, not measured
            await client.get(path)

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "path": path,
        "requests": len(latencies),
        "concurrency": concurrency,
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with embedded_server() as server:
        admin = server["credentials"]["tenants"]["acme"]["users"][0]["api_key"]
        auth = {"Authorization": f"Bearer {admin}"}
        results = [
            asyncio.run(
                load(
                    server["base_url"],
                    "/healthz",
                    {},
                    requests=args.requests,
                    concurrency=args.concurrency,
                )
            ),
            asyncio.run(
                load(
                    server["base_url"],
                    "/v1/me",
                    auth,
                    requests=args.requests,
                    concurrency=args.concurrency,
                )
            ),
        ]
    print(
        json.dumps(
            {
                "benchmark": "http_baseline",
                "server": "embedded default (SQLite, 1 uvicorn worker)",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
