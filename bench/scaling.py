"""How the cost of a search request grows with tenants and with concurrency. One JSON document.

- ``tenants``: 1, then 10, then 100 tenants share region ``eu`` of one embedded deployment (one
  API process, SQLite, Qdrant Edge, the local KMS). Each tenant is created the production way
  (its own KMS key and DEK, audited), gets an admin with an API key, and uploads the same public
  text (the opening of the Declaration of Independence) through ``POST /v1/documents``, so the
  region's shard holds every tenant's chunks. Tenants are added with the server stopped; after
  each step the server starts afresh, one extra tenant warms it up (models loaded), and
  ``POST /v1/search`` is measured at concurrency 1, cycling over every tenant's key: the first
  search of each tenant (its cold path: DEK unwrapped, its configuration loaded), then warm
  searches; plus the server's resident memory.
- ``concurrency``: the same endpoint for one tenant at 1, 8 and 32 requests in flight (closed
  loop): requests/s, p50/p99 and errors.

Besides wall-clock latencies (which other work on a shared machine inflates), each phase reports
the server's own CPU time per request (user + system, all threads, from /proc): the cost figure.

The corpus-size sweep (1k/10k/100k chunks) is ``bench.vectorstore --query-embedding``. The load
generator shares the machine's cores with the server: treat requests/s as a floor.

    python -m bench.scaling [--tenants 1 10 100] [--concurrency 1 8 32] [--searches 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._server import UNLIMITED_GATEWAY, percentiles, serve
from bench.retrieval import DATA, labelled


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def seed_tenants(data_dir: Path, first: int, count: int) -> list[str]:
    """Tenants ``first .. first+count-1`` with an admin each; returns their API keys."""
    from app.runtime import Runtime
    from audit.pseudonyms import SYSTEM_SUBJECT
    from audit.services import AuditLog, AuditOrigin
    from auth.repositories import ApiKeyRepository, UserRepository
    from auth.services import ApiKeyService, UserService
    from kernel.settings import ObservabilitySettings, Settings
    from kernel.tenancy import TenantRoute
    from tenants.repositories import TenantRepository
    from tenants.schemas import TenantCreate
    from tenants.services import TenantService

    runtime = Runtime.build(
        Settings(data_dir=data_dir, observability=ObservabilitySettings(log_level="WARNING"))
    )
    keys = []
    try:
        for n in range(first, first + count):
            async with runtime.control.transaction(None) as session:
                tenant = await TenantService(
                    TenantRepository(session),
                    runtime.registry,
                    runtime.keyring,
                    AuditOrigin(SYSTEM_SUBJECT),
                    runtime.system,
                ).create(TenantCreate(slug=f"scale-{n:03d}", name=f"Scale {n}", region="eu"))
            ctx = runtime.system.context(TenantRoute.of(tenant))
            async with runtime.registry.tenant_transaction(ctx) as session:
                audit = AuditLog(session, ctx)
                users = UserRepository(session, ctx)
                admin = await UserService(users, audit).create(
                    email=f"admin@scale-{n:03d}.example",
                    display_name="Admin",
                    roles=("tenant_admin",),
                )
                issued = await ApiKeyService(
                    ApiKeyRepository(session, ctx), users, runtime.pepper, audit
                ).issue(user_id=admin.id, name="scaling bench")
                keys.append(issued.secret)
    finally:
        await runtime.dispose()
    return keys


async def ingest(base: str, keys: list[str]) -> tuple[float, int]:
    """Each key's tenant uploads the document; waits for every job. Returns the seconds taken
    and the chunks indexed."""
    # Its opening (about 2 KB, a few chunks): the tenant count, not the corpus, is what varies.
    text = (DATA / "us-declaration.txt").read_text()[:2000]
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        jobs = []
        chunks = 0
        for key in keys:
            response = await client.post(
                "/v1/documents",
                json={"title": "Declaration", "text": text, "acl": {"visibility": "tenant"}},
                headers={"Authorization": f"Bearer {key}"},
            )
            response.raise_for_status()
            jobs.append((key, response.json()["job_id"]))
        for key, job in jobs:
            for _ in range(3000):
                auth = {"Authorization": f"Bearer {key}"}
                read = (await client.get(f"/v1/jobs/{job}", headers=auth)).json()
                status = read["status"]
                if status == "succeeded":
                    document = await client.get(
                        f"/v1/documents/{read['document_id']}", headers=auth
                    )
                    chunks += document.json()["chunk_count"]
                    break
                if status == "failed":
                    raise RuntimeError(f"ingest job {job} failed")
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"ingest job {job} did not finish")
    return time.perf_counter() - started, chunks


async def searches(
    base: str, keys: list[str], *, n: int, concurrency: int
) -> tuple[list[float], float, int]:
    """``n`` searches, closed loop at ``concurrency``, cycling over ``keys`` and the questions.
    Returns the latencies (s), the elapsed time (s) and the count of non-200 answers."""
    questions = [q for q, _ in labelled()]
    samples: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < n:
                i = issued
                issued += 1
                began = time.perf_counter()
                response = await client.post(
                    "/v1/search",
                    json={"query": questions[i % len(questions)], "top_k": 8},
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                )
                samples.append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return samples, elapsed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "benchmark": "scaling",
        "cpu_count": os.cpu_count(),
        "deployment": "embedded default: 1 API process, SQLite, Qdrant Edge, local KMS",
        "endpoint": "POST /v1/search (DLP inbound, query embedding, filtered hybrid query, "
        "sealed text opened)",
        "tenants": [],
        "concurrency": [],
    }
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-scaling-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
        env.update(
            {
                "BULWARK_DATA_DIR": data_dir,
                "BULWARK_OBSERVABILITY__LOG_LEVEL": "WARNING",
                **UNLIMITED_GATEWAY,
            }
        )
        from kernel.settings import Settings
        from migrations.runner import migrate

        migrate(Settings(data_dir=Path(data_dir)))
        # Tenant 0 only warms each fresh server process up (models loaded, pools open), so that
        # the first search of every measured tenant shows that tenant's own cold path.
        (warmer,) = asyncio.run(seed_tenants(Path(data_dir), 0, 1))
        keys: list[str] = []
        chunks = 0
        for total in sorted(args.tenants):
            new = asyncio.run(seed_tenants(Path(data_dir), len(keys) + 1, total - len(keys)))
            with serve(env) as (base, process):
                ingest_s, added = asyncio.run(ingest(base, new if keys else [warmer, *new]))
                chunks += added
                keys += new
            with serve(env) as (base, process):
                asyncio.run(searches(base, [warmer], n=5, concurrency=1))
                cpu = _cpu_s(process.pid)
                cold, _, cold_errors = asyncio.run(searches(base, keys, n=len(keys), concurrency=1))
                cold_cpu = _cpu_s(process.pid) - cpu
                warm_n = max(args.searches, len(keys))
                cpu = _cpu_s(process.pid)
                warm, _, warm_errors = asyncio.run(searches(base, keys, n=warm_n, concurrency=1))
                warm_cpu = _cpu_s(process.pid) - cpu
                report["tenants"].append(
                    {
                        "tenants": total,
                        "chunks_in_region": chunks,
                        "ingest_seconds_for_new_tenants": round(ingest_s, 1),
                        "first_search_per_tenant": {
                            **percentiles(cold),
                            "server_cpu_ms_per_request": round(cold_cpu * 1000 / len(cold), 1),
                        },
                        "search": {
                            "requests": warm_n,
                            **percentiles(warm),
                            "server_cpu_ms_per_request": round(warm_cpu * 1000 / warm_n, 1),
                        },
                        "errors": cold_errors + warm_errors,
                        "server_rss_mb": _rss_mb(process.pid),
                    }
                )
        with serve(env) as (base, process):
            one = keys[:1]
            asyncio.run(searches(base, one, n=20, concurrency=1))  # warm-up, not measured
            for concurrency in args.concurrency:
                n = max(args.searches, 10 * concurrency)
                cpu = _cpu_s(process.pid)
                samples, elapsed, errors = asyncio.run(
                    searches(base, one, n=n, concurrency=concurrency)
                )
                cpu = _cpu_s(process.pid) - cpu
                report["concurrency"].append(
                    {
                        "concurrency": concurrency,
                        "requests": n,
                        "errors": errors,
                        "requests_per_s": round(len(samples) / elapsed, 1),
                        **percentiles(samples),
                        "server_cpu_ms_per_request": round(cpu * 1000 / n, 1),
                        # Share of one core the server used: against the machine's cores, how
                        # close it came to saturating them.
                        "server_cpu_cores_busy": round(cpu / elapsed, 2),
                    }
                )
            report["server_rss_mb_after_load"] = _rss_mb(process.pid)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
