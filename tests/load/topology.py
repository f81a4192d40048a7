"""One region's scale-out topology on 127.0.0.1, started and stopped by the load harness.

- PostgreSQL: the shared server, a fresh control and regional database for this run (created
  here, dropped at the end; no other database is touched), reached by the app through a
  cuttable TCP proxy as the non-owner role ``bulwark_app`` (FORCE RLS applies);
- RabbitMQ: the shared broker, a queue and exchange of this run's own (deleted at the end);
- a Qdrant REST peer (``tests/peers/qdrant_peer.py``; no Qdrant server installs here);
- moto_server for KMS (through a cuttable proxy) and S3 (direct);
- two zero-latency model servers (``tests/peers/llm_peer.py``): every tier's first endpoint on
  peer A, behind a cuttable proxy, the second on peer B;
- two ``bulwark serve`` and two ``bulwark worker`` processes, configured by ``BULWARK_*``
  variables in the production environment (explicit secrets and audit signing key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._server import free_port, wait_until_up

APP_ROLE = "bulwark_app"
AWS_REGION = "eu-west-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": AWS_REGION,
}
PEER_TEXT = "The policy says so [1]."
# Quota reservation leases (gateway.reservation_lease_seconds) in this topology.
LEASE_SECONDS = 20.0
TIERS = ("small", "mid", "frontier")


def _wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.1)


@dataclass
class Proxy:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def cut(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def restore(self) -> None:
        self.process.send_signal(signal.SIGUSR2)


@dataclass
class Topology:
    root: Path
    pg_dsn: str
    amqp_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxies: dict[str, Proxy] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    operator_token: str = field(default_factory=lambda: "op-" + uuid.uuid4().hex)
    bucket: str = ""
    queue: str = ""

    # -- addresses ------------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def api_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def apis(self) -> list[str]:
        return ["api-1", "api-2"]

    @property
    def workers(self) -> list[str]:
        return ["worker-1", "worker-2"]

    def owner_dsn(self, database: str) -> str:
        """asyncpg DSN of one of this run's databases as the shared server's superuser."""
        head, _, _ = self.pg_dsn.rpartition("/")
        return f"{head}/{database}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['moto']}"

    @property
    def qdrant_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['qdrant']}"

    @property
    def peer_b_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['peer-b']}"

    @property
    def peer_a_direct_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['peer-a']}"

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, env=env or os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def _python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def _proxy(self, name: str, upstream_port: int) -> None:
        port = free_port()
        self._spawn(
            f"proxy-{name}",
            self._python(
                "tests.load.proxy",
                "--listen",
                str(port),
                "--upstream",
                f"127.0.0.1:{upstream_port}",
            ),
        )
        process = self.processes[f"proxy-{name}"]
        _wait_port(port, process)
        self.proxies[name] = Proxy(name, port, process)

    def kill(self, name: str) -> None:
        """``kill -9``: no shutdown handler runs, in-flight work is lost with the process."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def start_api(self, name: str) -> None:
        port = self.ports.setdefault(name, free_port())
        self._spawn(name, [self._bulwark, "serve", "--port", str(port)], self.env)
        wait_until_up(f"{self.api_url(name)}/healthz", self.processes[name], seconds=120)

    def start_worker(self, name: str) -> None:
        self._spawn(name, [self._bulwark, "worker"], self.env)

    @property
    def _bulwark(self) -> str:
        return str(Path(sys.executable).parent / "bulwark")

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self._create_databases()
        self.ports["peer-a"], self.ports["peer-b"] = free_port(), free_port()
        for peer in ("peer-a", "peer-b"):
            self._spawn(
                peer,
                self._python(
                    "tests.peers.llm_peer", "--port", str(self.ports[peer]), "--text", PEER_TEXT
                ),
            )
            wait_until_up(f"http://127.0.0.1:{self.ports[peer]}/", self.processes[peer])
        self.ports["qdrant"] = free_port()
        self._spawn(
            "qdrant", self._python("tests.peers.qdrant_peer", "--port", str(self.ports["qdrant"]))
        )
        wait_until_up(f"{self.qdrant_url}/", self.processes["qdrant"])
        self.ports["moto"] = free_port()
        self._spawn(
            "moto",
            [
                str(Path(sys.executable).parent / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.ports["moto"]),
            ],
            {**os.environ, **AWS_ENV},
        )
        _wait_port(self.ports["moto"], self.processes["moto"])
        self._proxy("postgres", int(self._pg_port))
        self._proxy("model", self.ports["peer-a"])
        self._proxy("kms", self.ports["moto"])
        self.env = self._settings_env()
        migrate = await asyncio.to_thread(
            subprocess.run,
            [self._bulwark, "migrate"],
            env=self.env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"bulwark migrate failed: {migrate.stderr.decode()[-3000:]}")
        for name in self.apis:
            self.start_api(name)
        for name in self.workers:
            self.start_worker(name)

    async def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        await self._drop_queue()
        await self._drop_databases()

    # -- PostgreSQL ------------------------------------------------------------------------

    @property
    def _pg_port(self) -> str:
        from sqlalchemy.engine import make_url

        return str(make_url(self.pg_dsn).port or 5432)

    async def _create_databases(self) -> None:
        prefix = f"bwload_{self.run_id}"
        self.databases = {"control": f"{prefix}_control", "eu": f"{prefix}_eu"}
        admin = await asyncpg.connect(self.pg_dsn)
        try:
            await admin.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
                f"THEN CREATE ROLE {APP_ROLE} LOGIN; END IF; END $$"
            )
            for database in self.databases.values():
                await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()

    async def _drop_databases(self) -> None:
        if not self.databases:
            return
        admin = await asyncpg.connect(self.pg_dsn)
        try:
            for database in self.databases.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()

    async def _drop_queue(self) -> None:
        if not self.queue:
            return
        import aio_pika

        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.queue)

    # -- settings --------------------------------------------------------------------------

    def _url(self, database: str, *, app: bool) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self.pg_dsn).set(drivername="postgresql+asyncpg", database=database)
        if app:
            url = url.set(username=APP_ROLE, password=None, host="127.0.0.1")
            url = url.set(port=self.proxies["postgres"].port)
        return url.render_as_string(hide_password=False)

    def _settings_env(self) -> dict[str, str]:
        key_file = self.root / "audit-signing.pem"
        key_file.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        self.bucket = f"bwload-{self.run_id}"
        self.queue = f"bulwark-load-{self.run_id}"
        model_proxy = f"http://127.0.0.1:{self.proxies['model'].port}"
        models = [
            {
                "name": f"eu-{tier}-{side}",
                "tier": tier,
                "base_url": base,
                "model": f"{tier}-model",
                "input_price_per_mtok": 1.0,
                "output_price_per_mtok": 2.0,
                "max_concurrency": 64,
                "connect_timeout_seconds": 1.0,
                "read_timeout_seconds": 10.0,
            }
            for tier in TIERS
            for side, base in (("a", model_proxy), ("b", self.peer_b_url))
        ]
        groups: dict[str, Any] = {
            "data_dir": str(self.root / "data"),
            "environment": "production",
            "security": {"operator_token": self.operator_token, "secret_key": "load-" + "k" * 40},
            "database": {
                "control_url": self._url(self.databases["control"], app=True),
                "control_migrate_url": self._url(self.databases["control"], app=False),
                "pool_size": 8,
            },
            "observability": {"log_json": True, "log_level": "INFO", "judge_sample_rate": 0.0},
            # A short DEK cache, so that a KMS outage is felt within a second (fail closed).
            "keys": {"dek_cache_ttl_seconds": 1.0},
            "audit": {"signing_key_file": str(key_file)},
            "jobs": {"broker_url": self.amqp_url, "queue": self.queue, "concurrency": 2},
            "retention": {"sweep_interval_seconds": 0},
            "gateway": {
                "router": {"classifier": "none"},
                "identity_requests_per_minute": 1_000_000,
                "tenant_requests_per_minute": 1_000_000,
                "breaker_cooldown_seconds": 5.0,
                # Short leases, so that the run sees a killed process's reservations released.
                "reservation_lease_seconds": LEASE_SECONDS,
            },
            "regions": {
                "eu": {
                    "database_url": self._url(self.databases["eu"], app=True),
                    "migrate_database_url": self._url(self.databases["eu"], app=False),
                    "vector_store": self.qdrant_url,
                    "object_store": f"s3://{self.bucket}",
                    "object_store_region": AWS_REGION,
                    "object_store_endpoint_url": self.moto_url,
                    "kms": {
                        "provider": "aws-kms",
                        "aws_region": AWS_REGION,
                        "endpoint_url": f"http://127.0.0.1:{self.proxies['kms'].port}",
                    },
                    "models": models,
                }
            },
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
        env.update(AWS_ENV)
        for name, value in groups.items():
            env[f"BULWARK_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env

    # -- model peer control ----------------------------------------------------------------

    async def fail_model(self, count: int, status: int = 503) -> None:
        """Script peer A's next ``count`` replies as ``status`` (a 5xx burst)."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(
                f"{self.peer_a_direct_url}/_peer/script", json={"status": status, "count": count}
            )
            response.raise_for_status()

    async def healthy(self, name: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.api_url(name)}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not come back")
                await asyncio.sleep(0.2)
