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
