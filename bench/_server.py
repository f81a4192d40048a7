"""Start a throw-away embedded Bulwark server on 127.0.0.1 for a benchmark, and stop it after."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from auth.context import user_context
from kernel.tenancy import TenantContext, TenantRoute


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{url} did not start")
        time.sleep(0.1)


# The load generator sends far more model requests per minute than a person.
UNLIMITED_GATEWAY = {
    "BULWARK_GATEWAY__IDENTITY_REQUESTS_PER_MINUTE": "100000000",
    "BULWARK_GATEWAY__TENANT_REQUESTS_PER_MINUTE": "100000000",
    "BULWARK_GATEWAY__ROUTER__CLASSIFIER": "none",
}


@contextmanager
def model_peer(text: str | None = None) -> Iterator[str]:
    """A zero-latency model server (``tests/peers/llm_peer.py``) on 127.0.0.1; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "tests.peers.llm_peer", "--port", str(port)]
    peer = subprocess.Popen(
        [*command, *(["--text", text] if text else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/", peer)
        yield url
    finally:
        peer.terminate()
        peer.wait(timeout=10)


@contextmanager
def embedded_server(
    extra_env: dict[str, str] | None = None,
    *,
    models: Callable[[str], list[dict[str, Any]]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Migrate, seed the demo and serve; yields the base URL and the demo credentials.

    ``models``: each region's model fleet (by region name) instead of the embedded default's.
    """
    from kernel.settings import DEFAULT_REGIONS, embedded_region

    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
        env.update(
            {
                "BULWARK_DATA_DIR": data_dir,
                "BULWARK_OBSERVABILITY__LOG_LEVEL": "WARNING",
                **(extra_env or {}),
            }
        )
        if models is not None:
            regions = {
                name: {**embedded_region(Path(data_dir), name), "models": models(name)}
                for name in DEFAULT_REGIONS
            }
            env["BULWARK_REGIONS"] = json.dumps(regions)
        cli = [sys.executable, "-m", "app.cli"]
        subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([*cli, "demo"], env=env, check=True, capture_output=True)
        with serve(env) as (base_url, _):
            credentials = json.loads((Path(data_dir) / "demo-credentials.json").read_text())
            yield {"base_url": base_url, "credentials": credentials}


@contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``bulwark serve`` with ``env`` (a migrated data dir) on a free port; yields its URL and
    the server process."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base_url}/healthz", server)
        yield base_url, server
    finally:
        server.terminate()
        server.wait(timeout=10)


def one_region_settings(data_dir: Path, kms: dict[str, Any] | None = None) -> Any:
    """Embedded settings with a single region ``eu`` under ``data_dir`` (benchmarks only)."""
    from kernel.settings import Settings

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


def bench_member(
    route: TenantRoute, *, groups: Iterable[uuid.UUID] = (), clearance: int = 0
) -> TenantContext:
    """A member's context on ``route`` (a fresh user id), as authentication builds it."""
    return user_context(
        route,
        user_id=uuid.uuid4(),
        roles=["member"],
        group_ids=groups,
        auth_method="api_key",
        credential_id=None,
        clearance=clearance,
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
            runtime.system,
        ).create(TenantCreate(slug=slug, name="Bench", region="eu"))


def percentiles(samples: list[float], digits: int = 2) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, digits),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, digits),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, digits),
    }
