"""Start a throw-away embedded Bulwark server on 127.0.0.1 for a benchmark, and stop it after."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_server(extra_env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Migrate, seed the demo and serve; yields the base URL and the demo credentials."""
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
        env.update(
            {
                "BULWARK_DATA_DIR": data_dir,
                "BULWARK_OBSERVABILITY__LOG_LEVEL": "WARNING",
                **(extra_env or {}),
            }
        )
        cli = [sys.executable, "-m", "app.cli"]
        subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([*cli, "demo"], env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(
            [*cli, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("benchmark server did not start")
                time.sleep(0.1)
            credentials = json.loads((Path(data_dir) / "demo-credentials.json").read_text())
            yield {"base_url": base_url, "credentials": credentials}
        finally:
            server.terminate()
            server.wait(timeout=10)


def one_region_settings(data_dir: Path, kms: dict[str, Any] | None = None) -> Any:
    """Embedded settings with a single region ``eu`` under ``data_dir`` (benchmarks only)."""
    from app.settings import Settings

    root = data_dir / "regions" / "eu"
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "environment": "test",
            "security": {"operator_token": "bench", "secret_key": "bench" * 8},
            "observability": {"log_level": "WARNING"},
            "regions": {
                "eu": {
                    "database_url": f"sqlite+aiosqlite:///{root / 'bulwark.db'}",
                    "vector_store": str(root / "vectors"),
                    "object_store": str(root / "objects"),
                    "kms": kms or {"provider": "local", "key_file": str(root / "kms.key")},
                }
            },
        }
    )


async def bench_tenant(runtime: Any, slug: str = "bench") -> Any:
    """A tenant created the production way (keys provisioned, creation audited)."""
    from audit.pseudonyms import SYSTEM_SUBJECT
    from audit.services import AuditOrigin
    from tenants.repositories import TenantRepository
    from tenants.schemas import TenantCreate
    from tenants.services import TenantService

    async with runtime.control.transaction(None) as session:
        return await TenantService(
            TenantRepository(session),
            runtime.registry,
            runtime.keyring,
            AuditOrigin(SYSTEM_SUBJECT),
        ).create(TenantCreate(slug=slug, name="Bench", region="eu"))


def percentiles(samples: list[float], digits: int = 2) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, digits),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, digits),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, digits),
    }
