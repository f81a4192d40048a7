"""Envelope-encryption figures: seal/open throughput, and the latency the DEK cache saves.

Prints one JSON document:
- ``envelope``: AES-256-GCM seal and open throughput (MB/s) for several message sizes;
- ``dek`` per KMS (``local`` key file, and AWS KMS via a local moto_server): the added latency of
  obtaining the tenant's current DEK on a cache hit (one indexed database read) and on a miss
  (the same read plus a KMS unwrap).

    python -m bench.crypto [--iterations 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from bench._server import bench_tenant, one_region_settings, percentiles
from kernel.settings import Settings
from kernel.tenancy import TenantRoute
from keys import envelope
from migrations.runner import migrate


def envelope_throughput(sizes: list[int], seconds: float = 0.5) -> list[dict[str, Any]]:
    dek, tenant = os.urandom(32), uuid.uuid4()
    results = []
    for size in sizes:
        payload = os.urandom(size)
        blob = envelope.seal(dek, 1, tenant, "document", "bench", payload)
        row: dict[str, Any] = {"bytes": size}
        operations: dict[str, Callable[[], bytes]] = {
            "seal": partial(envelope.seal, dek, 1, tenant, "document", "bench", payload),
            "open": partial(envelope.open_, dek, tenant, "document", "bench", blob),
        }
        for name, fn in operations.items():
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                fn()
                count += 1
            elapsed = time.perf_counter() - started
            row[f"{name}_mb_per_s"] = round(count * size / elapsed / 1e6, 1)
        results.append(row)
    return results


async def dek_latency(settings: Settings, iterations: int) -> dict[str, Any]:
    await asyncio.to_thread(migrate, settings)
    runtime = Runtime.build(settings)
    try:
        tenant = await bench_tenant(runtime, f"bench-{uuid.uuid4().hex[:8]}")
        ctx = runtime.system.context(TenantRoute.of(tenant))
        hit, miss = [], []
        for _ in range(iterations):
            async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
                keys = runtime.keyring.for_tenant(session, ctx)
                runtime.keyring.forget_tenant(ctx)
                started = time.perf_counter()
                await keys.current()
                miss.append(time.perf_counter() - started)
                started = time.perf_counter()
                await keys.current()
                hit.append(time.perf_counter() - started)
        return {
            "cache_hit": percentiles(hit, 3),
            "cache_miss": percentiles(miss, 3),
            "iterations": iterations,
        }
    finally:
        await runtime.dispose()


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(  # the AWS peer used by the test suite, on loopback only
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    report: dict[str, Any] = {
        "benchmark": "crypto",
        "envelope": envelope_throughput([1024, 64 * 1024, 1024 * 1024]),
        "dek": {},
    }
    with tempfile.TemporaryDirectory() as local_dir:
        key_file = str(Path(local_dir) / "regions/eu/kms.key")
        report["dek"]["local"] = asyncio.run(
            dek_latency(
                one_region_settings(Path(local_dir), {"provider": "local", "key_file": key_file}),
                args.iterations,
            )
        )
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as aws_dir:
        report["dek"]["aws_kms_moto"] = asyncio.run(
            dek_latency(
                one_region_settings(
                    Path(aws_dir),
                    {"provider": "aws-kms", "aws_region": "eu-west-1", "endpoint_url": endpoint},
                ),
                args.iterations,
            )
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
