"""The multi-process load-and-fault run (``make loadtest``).

Starts one region's scale-out topology on 127.0.0.1 (``tests/load/topology.py``: 2 API
processes, 2 workers, PostgreSQL and RabbitMQ, a Qdrant REST peer, moto for KMS and S3, two
zero-latency model servers, cuttable TCP proxies), creates three tenants, and sends phases of a
mixed load (chat, search, ingest, job polls, document lists, SCIM) at a fixed concurrency. Each
phase but the first injects one fault partway through:

- ``worker-kill``: ``kill -9`` of a worker while at least three ingestion jobs run (each worker
  runs at most two, so it dies mid-job); restarted after a few seconds;
- ``api-kill``: ``kill -9`` of an API process; clients see only transport errors and retry on
  the other process; restarted;
- ``postgres-down``: the PostgreSQL proxy is cut for a few seconds (the shared server stays
  up): 503 with Retry-After, then recovery;
- ``model-5xx``: a burst of 503s from the first model server: answers fall back to the second;
- ``kms-down``: the KMS proxy is cut: 503, nothing written in clear.

After every phase: no job lost, exactly-once in effect (points per document), no cross-tenant
row or answer, budgets equal the ledger, audit chains verify. At the end: no plaintext in the
databases, the bucket, the vector payloads or the logs, and ``bulwark audit verify`` from the
command line. Prints its figures as JSON; exits 1 when an invariant fails.

    python -m tests.load.loadfault [--requests-per-phase 500] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tests.load import checks
from tests.load.topology import Topology
from tests.load.workload import TOPICS, Cluster, Recorder, Tenant, Workload, figures

MARKERS = ("quillfeather", "brambleworth", "zephyrine")
INGEST_HEAVY = {"ingest": 45, "search": 20, "chat": 15, "job": 15, "scim_create": 5}


async def _ok(cluster: Cluster, method: str, path: str, key: str, **kwargs: Any) -> Any:
    response = await cluster.call(f"setup {path}", method, path, key=key, **kwargs)
    if response is None or response.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {response and response.text}")
    return response.json() if response.content else None


async def make_tenant(cluster: Cluster, operator: str, marker: str, run_id: str) -> Tenant:
    slug = f"{marker[:6]}-{run_id[:6]}"
    created = await _ok(
        cluster,
        "POST",
        "/v1/tenants",
        operator,
        json={"slug": slug, "name": f"Tenant {slug}", "region": "eu"},
    )
    boot = await _ok(
        cluster,
        "POST",
        f"/v1/tenants/{created['id']}/admins",
        operator,
        json={"email": f"admin@{slug}.example", "display_name": "Admin"},
    )
    admin = boot["api_key"]["key"]
    members = []
    for n in range(2):
        user = await _ok(
            cluster,
            "POST",
            "/v1/admin/users",
            admin,
            json={"email": f"member{n}@{slug}.example", "display_name": "M", "roles": ["member"]},
        )
        key = await _ok(
            cluster, "POST", "/v1/admin/api-keys", admin, json={"user_id": user["id"], "name": "k"}
        )
        members.append(key["key"])
    scim = await _ok(cluster, "POST", "/v1/admin/scim-token", admin)
    # Quotas make every model call reserve and settle against counters (checked against the
    # ledger after each fault); the limits themselves are never reached.
    limit = {"day": {"tokens": 10**12, "usd": 10**6}, "month": {"tokens": 10**13}}
    await _ok(cluster, "PUT", "/v1/admin/quotas", admin, json={"tenant": limit, "per_user": limit})
    return Tenant(slug, created["id"], marker, admin, members, scim["token"])


async def running_jobs(topology: Topology) -> int:
    connection = await asyncpg.connect(topology.owner_dsn(topology.databases["eu"]))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'"))
    finally:
        await connection.close()


class Run:
    def __init__(self, topology: Topology, concurrency: int, per_phase: int) -> None:
        self.topology = topology
        self.concurrency = concurrency
        self.per_phase = per_phase
        self.recorder = Recorder()
        self.cluster = Cluster(
            {name: topology.api_url(name) for name in topology.apis}, self.recorder, concurrency
        )
        self.tenants: list[Tenant] = []
        self.workload: Workload | None = None
        self.report: dict[str, Any] = {"phases": {}}
        self.violations: list[str] = []
        self.wall = 0.0

    async def setup(self) -> None:
        for marker in MARKERS:
            self.tenants.append(
                await make_tenant(
                    self.cluster, self.topology.operator_token, marker, self.topology.run_id
                )
            )
        self.workload = Workload(self.cluster, self.tenants)
        # A starting corpus: every topic once per tenant.
        await asyncio.gather(
            *(self.workload.ingest(t, n) for t in self.tenants for n in range(len(TOPICS)))
        )
        figures_, problems = await checks.jobs_settle(self.topology, self.tenants)
        self.violations += [f"setup: {p}" for p in problems]
        self.report["setup"] = figures_

    async def phase(
        self,
        name: str,
        fault: Callable[[], Awaitable[dict[str, Any]]] | None,
        *,
        allowed: tuple[str, ...] = ("503",),
        expected: tuple[str, ...] = (),
        forbidden: tuple[str, ...] = (),
        weights: dict[str, int] | None = None,
    ) -> None:
        assert self.workload is not None
        self.cluster.phase = name
        first = len(self.recorder.samples)
        injected: dict[str, Any] = {}

        async def inject() -> None:
            if fault is not None:
                # Partway in: the load is at full concurrency when the fault hits.
                await self.recorder.reached(first + self.per_phase // 5)
                injected.update(await fault())

        load = asyncio.create_task(self.workload.run(self.per_phase, self.concurrency, weights))
        faulted = asyncio.create_task(inject())
        seconds = await load
        await faulted
        self.wall += seconds
        samples = self.recorder.samples[first:]
        kinds = {s.kind for s in samples if s.kind != "ok"}
        problems = [
            f"unexpected outcome {kind!r}"
            for kind in sorted(kinds)
            if not kind.startswith(allowed) or kind.startswith(forbidden)
        ]
        problems += [
            f"the fault was not felt: no {want!r} outcome"
            for want in expected
            if not any(k.startswith(want) for k in kinds)
        ]
        await asyncio.sleep(1.0)  # background settlements of the last answers
        result: dict[str, Any] = {
            "requests": len(samples),
            "seconds": round(seconds, 1),
            "fault": injected,
            "outcomes": dict(sorted(_count(s.kind for s in samples).items())),
        }
        for check in (
            checks.jobs_settle(self.topology, self.tenants),
            checks.stores_agree(self.topology, self.tenants, self.recorder),
            checks.budgets_reconcile(self.topology),
            checks.audit_chains(self.cluster, self.tenants),
        ):
            measured, broke = await check
            result.update(measured)
            problems += broke
        result["violations"] = problems
        self.report["phases"][name] = result
        self.violations += [f"{name}: {p}" for p in problems]
        print(json.dumps({"phase": name, **result}), file=sys.stderr, flush=True)

    # -- faults ----------------------------------------------------------------------------

    async def kill_worker(self) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        running = 0
        while time.monotonic() < deadline:
            running = await running_jobs(self.topology)
            if running >= 3:  # at most two per worker: the victim is mid-job
                break
            await asyncio.sleep(0.02)
        self.topology.kill("worker-1")
        await asyncio.sleep(3)
        self.topology.start_worker("worker-1")
        return {"killed": "worker-1", "jobs_running_at_kill": running}

    async def kill_api(self) -> dict[str, Any]:
        self.topology.kill("api-1")
        started = time.monotonic()
        await asyncio.sleep(3)
        await asyncio.to_thread(self.topology.start_api, "api-1")
        return {"killed": "api-1", "back_after_s": round(time.monotonic() - started, 1)}

    async def _recovery(self, path: str, since: float) -> float:
        tenant = self.tenants[0]
        while time.monotonic() - since < 60:
            response = await self.cluster.call(f"probe {path}", "GET", path, key=tenant.admin_key)
            if response is not None and response.status_code == 200:
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.1)
        self.violations.append(f"no recovery of {path} within 60 s")
        return -1.0

    async def cut(self, proxy: str, seconds: float, probe: str) -> dict[str, Any]:
        self.topology.proxies[proxy].cut()
        await asyncio.sleep(seconds)
        self.topology.proxies[proxy].restore()
        restored = time.monotonic()
        return {
            "cut": proxy,
            "seconds": seconds,
            "recovered_after_s": await self._recovery(probe, restored),
        }

    async def model_burst(self) -> dict[str, Any]:
        await self.topology.fail_model(300)
        return {"model_5xx_scripted": 300}

    async def release_leases(self) -> None:
        """After the last fault, every reservation a killed process left is released by the
        first admission in its tenant once its lease has run out (a process looks at most once
        a second per tenant; the pings come a second or more after the last faults' traffic):
        nothing stays reserved."""
        figures_, problems = await checks.budgets_reconcile(self.topology)
        left = figures_["open_leases"]
        if figures_["last_lease_expiry"] is not None:
            expiry = datetime.fromisoformat(figures_["last_lease_expiry"])
            await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1)
        for tenant in self.tenants:
            await _ok(
                self.cluster,
                "POST",
                "/v1/gateway/chat/completions",
                tenant.admin_key,
                json={"model": "small", "messages": [{"role": "user", "content": "ping"}]},
            )
        deadline = time.monotonic() + 15
        while True:  # the pings' own settlements run after their answers
            figures_, problems = await checks.budgets_reconcile(self.topology)
            if figures_["open_leases"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        self.report["leases"] = {"open_after_faults": left, **figures_}
        self.violations += [f"leases: {p}" for p in problems]
        if figures_["tokens_still_reserved"] or figures_["open_leases"]:
            self.violations.append(
                f"leases: {figures_['open_leases']} reservations still open after their lease"
            )

    async def finish(self) -> None:
        for name, check in (
            ("no_plaintext", asyncio.to_thread(checks.no_plaintext, self.topology, self.tenants)),
            ("audit_cli", asyncio.to_thread(checks.audit_cli, self.topology, self.tenants[0])),
        ):
            measured, broke = await check
            self.report[name] = measured
            self.violations += [f"{name}: {p}" for p in broke]


def _count(kinds: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    topology = Topology(root, args.postgres_dsn, args.amqp_url)
    started = time.monotonic()
    try:
        await topology.start()
        run = Run(topology, args.concurrency, args.requests_per_phase)
        try:
            await run.setup()
            # Every phase allows a 503 that carries Retry-After and problem details (the client
            # checks both on each one): load shedding, e.g. a connection pool that stayed full
            # for its timeout on this shared 2-core machine. Anything else must be a success.
            await run.phase("baseline", None)
            await run.phase("worker-kill", run.kill_worker, weights=INGEST_HEAVY)
            # Retry-safe: a transport error (the request never got an answer; the client sends
            # it to the other process), or a 503 with Retry-After.
            await run.phase(
                "api-kill", run.kill_api, allowed=("transport", "503"), expected=("transport",)
            )
            await run.phase(
                "postgres-down",
                lambda: run.cut("postgres", 5.0, "/v1/documents?limit=1"),
                expected=("503 database_unavailable",),
            )
            # Endpoint B serves every tier: no answer may fail for want of a model.
            await run.phase("model-5xx", run.model_burst, forbidden=("503 model_unavailable",))
            await run.phase(
                "kms-down",
                lambda: run.cut("kms", 5.0, "/v1/documents?limit=1"),
                expected=("503 kms_unavailable",),
                weights={**Workload.DEFAULT_WEIGHTS, "ingest": 30},
            )
            fallbacks = run.recorder.fallbacks.get("model-5xx", 0)
            run.report["phases"]["model-5xx"]["answers_via_fallback"] = fallbacks
            if not fallbacks:
                run.violations.append("model-5xx: no answer was served by a fallback endpoint")
            await run.release_leases()
            await run.finish()
        finally:
            await run.cluster.aclose()
        report = {
            "harness": "loadfault",
            "topology": {
                "api_processes": 2,
                "workers": 2,
                "tenants": len(run.tenants),
                "concurrency": args.concurrency,
                "postgres": "shared server, fresh databases, through a cuttable proxy",
                "broker": "RabbitMQ (taskiq-aio-pika)",
                "vector_store": "Qdrant REST peer (tests/peers/qdrant_peer.py)",
                "kms": "moto_server AWS KMS through a cuttable proxy; S3 on moto",
                "models": "2 zero-latency llm_peer servers (A behind a proxy, B as fallback)",
                "cpu_count": os.cpu_count(),
            },
            "load": figures(run.recorder, run.wall),
            **{k: v for k, v in run.report.items()},
            "violations": run.violations + run.recorder.violations,
        }
    finally:
        await topology.stop()
    report["total_seconds"] = round(time.monotonic() - started, 1)
    report["ok"] = not report["violations"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests-per-phase", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get(
            "BULWARK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BULWARK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--keep", action="store_true", help="Keep the run's directory (logs).")
    args = parser.parse_args()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # unwinds through the clean-up (processes, databases, queue)

    signal.signal(signal.SIGTERM, interrupted)
    root = Path(tempfile.mkdtemp(prefix=f"bulwark-load-{uuid.uuid4().hex[:6]}-"))
    report: dict[str, Any] = {"ok": False}
    try:
        report = asyncio.run(main_async(args, root))
    finally:
        if args.keep or not report.get("ok"):
            report["run_directory"] = str(root)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
        print(json.dumps(report, indent=2))
    sys.exit(0 if report.get("ok") else 1)


if __name__ == "__main__":
    main()
