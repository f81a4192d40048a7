"""The invariants checked after every fault, read from the stores themselves (the regional
database as its owner, the Qdrant peer, the S3 bucket, the processes' logs) and through the API.

Each check returns ``(figures, violations)``: what it measured, and what broke.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import boto3
from qdrant_client import AsyncQdrantClient

from tests.load.topology import AWS_ENV, AWS_REGION, Topology
from tests.load.workload import Cluster, Recorder, Tenant

Result = tuple[dict[str, Any], list[str]]
PG_DUMP = shutil.which("pg_dump") or "/usr/bin/pg_dump"


async def _regional(topology: Topology) -> asyncpg.Connection:
    return await asyncpg.connect(topology.owner_dsn(topology.databases["eu"]))


async def jobs_settle(topology: Topology, tenants: list[Tenant], within: float = 180) -> Result:
    """No job lost: every job a client was given ends succeeded, or failed with a reason."""
    deadline = time.monotonic() + within
    connection = await _regional(topology)
    try:
        while True:
            open_jobs = await connection.fetchval(
                "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
            )
            if not open_jobs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        rows = await connection.fetch(
            "SELECT id::text, tenant_id::text, status, attempts, error_code FROM jobs"
        )
    finally:
        await connection.close()
    problems = []
    by_status = Counter(r["status"] for r in rows)
    known = {r["id"]: r for r in rows}
    for row in rows:
        if row["status"] in ("queued", "running"):
            problems.append(f"job {row['id']} still {row['status']} after {within:.0f} s (lost)")
        if row["status"] == "failed" and not row["error_code"]:
            problems.append(f"job {row['id']} failed without a reason")
    for tenant in tenants:
        for job_id in tenant.jobs:
            row = known.get(job_id)
            if row is None:
                problems.append(f"job {job_id} accepted for {tenant.slug} but not stored (lost)")
            elif row["tenant_id"] != tenant.id:
                problems.append(f"job {job_id} of {tenant.slug} stored under another tenant")
    failures = Counter(r["error_code"] for r in rows if r["status"] == "failed")
    figures = {
        "jobs": dict(by_status),
        "failed_reasons": dict(failures),
        "redelivered_or_retried": sum(1 for r in rows if r["attempts"] > 1),
    }
    return figures, problems[:50]


async def _points(topology: Topology) -> list[dict[str, Any]]:
    client = AsyncQdrantClient(url=topology.qdrant_url, timeout=60)
    try:
        points: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            batch, offset = await client.scroll(
                "bulwark_chunks", limit=1000, offset=offset, with_payload=True
            )
            points.extend(dict(p.payload or {}) for p in batch)
            if offset is None:
                return points
    finally:
        await client.close()


async def stores_agree(topology: Topology, tenants: list[Tenant], recorder: Recorder) -> Result:
    """Exactly once in effect, and no cross-tenant row: each ready document has exactly its
    chunk count of points, every point and every document answered belongs to the tenant that
    holds the document, and each document a tenant was told it created is that tenant's."""
    connection = await _regional(topology)
    try:
        documents = {
            r["id"]: r
            for r in await connection.fetch(
                "SELECT id::text, tenant_id::text, status, chunk_count, content_hash FROM documents"
            )
        }
        duplicates = await connection.fetchval(
            "SELECT count(*) FROM (SELECT tenant_id, content_hash FROM documents "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        users = await connection.fetch("SELECT tenant_id::text, email FROM users")
    finally:
        await connection.close()
    problems: list[str] = []
    slug_of = {t.id: t.slug for t in tenants}
    id_of = {t.slug: t.id for t in tenants}
    per_document: Counter[str] = Counter()
    for payload in await _points(topology):
        document = documents.get(payload.get("document_id", ""))
        per_document[payload.get("document_id", "")] += 1
        if document is None:
            problems.append(f"point of unknown document {payload.get('document_id')}")
        elif payload.get("tenant_id") != document["tenant_id"]:
            problems.append(f"point of document {document['id']} under another tenant")
    statuses = Counter(d["status"] for d in documents.values())
    for document in documents.values():
        if (
            document["status"] == "ready"
            and per_document[document["id"]] != document["chunk_count"]
        ):
            problems.append(
                f"document {document['id']}: {per_document[document['id']]} points for "
                f"{document['chunk_count']} chunks"
            )
    for slug, document_id in recorder.seen_documents:
        owner = documents.get(document_id)
        if owner is None or owner["tenant_id"] != id_of[slug]:
            problems.append(f"{slug} was shown document {document_id} it does not hold")
    for tenant in tenants:
        for document_id in tenant.documents:
            owner = documents.get(document_id)
            if owner is None:
                problems.append(f"document {document_id} accepted for {tenant.slug}, not stored")
            elif owner["tenant_id"] != tenant.id:
                problems.append(f"document {document_id} of {tenant.slug} under another tenant")
    for user in users:
        slug = slug_of.get(user["tenant_id"])
        if slug and user["email"] and not user["email"].endswith(f"@{slug}.example"):
            problems.append(f"user {user['email']} stored under {slug}")
    if duplicates:
        problems.append(f"{duplicates} duplicated documents (same tenant and content)")
    figures = {
        "documents": dict(statuses),
        "points": sum(per_document.values()),
        "users": len(users),
    }
    return figures, problems[:50]


async def budgets_reconcile(topology: Topology) -> Result:
    """Every usage counter equals the sum of the ledger rows it covers (tokens and cost);
    reservations never go negative, and every reserved amount is held by an open lease
    (``gateway_reservations``), read in one snapshot. Reservations a killed process held are
    reported until a later admission releases them after their lease."""
    connection = await _regional(topology)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            counters = await connection.fetch(
                "SELECT tenant_id, scope, period, used_tokens, used_microdollars, "
                "reserved_tokens, reserved_microdollars FROM gateway_counters"
            )
            ledger = await connection.fetch(
                "SELECT tenant_id, user_id::text, day, input_tokens + output_tokens AS tokens, "
                "cost_microdollars FROM gateway_usage"
            )
            leases = await connection.fetch(
                "SELECT tenant_id, charges, expires_at FROM gateway_reservations"
            )
    finally:
        await connection.close()
    held: dict[tuple[Any, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for lease in leases:
        charges = lease["charges"]
        for charge in json.loads(charges) if isinstance(charges, str) else charges:
            amount = held[(lease["tenant_id"], charge["scope"], charge["period"])]
            amount[0] += int(charge["tokens"])
            amount[1] += int(charge["microdollars"])
    sums: dict[tuple[Any, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in ledger:
        scopes = ["tenant"] + ([f"user:{row['user_id']}"] if row["user_id"] else [])
        for scope in scopes:
            for period in (f"d{row['day']}", f"m{row['day'][:7]}"):
                total = sums[(row["tenant_id"], scope, period)]
                total[0] += row["tokens"]
                total[1] += row["cost_microdollars"]
    problems = []
    reserved = 0
    for counter in counters:
        key = (counter["tenant_id"], counter["scope"], counter["period"])
        tokens, cost = sums.pop(key, [0, 0])
        if (counter["used_tokens"], counter["used_microdollars"]) != (tokens, cost):
            problems.append(
                f"counter {counter['scope']} {counter['period']}: used "
                f"{counter['used_tokens']} tokens / {counter['used_microdollars']} µ$, "
                f"ledger {tokens} / {cost}"
            )
        if counter["reserved_tokens"] < 0 or counter["reserved_microdollars"] < 0:
            problems.append(f"counter {counter['scope']} {counter['period']}: negative reservation")
        leased = held.pop(key, [0, 0])
        if [counter["reserved_tokens"], counter["reserved_microdollars"]] != leased:
            problems.append(
                f"counter {counter['scope']} {counter['period']}: reserved "
                f"{counter['reserved_tokens']} tokens / {counter['reserved_microdollars']} µ$, "
                f"open leases {leased[0]} / {leased[1]}"
            )
        if counter["scope"] == "tenant" and counter["period"].startswith("d"):
            reserved += counter["reserved_tokens"]
    for key, (tokens, cost) in sums.items():
        if tokens or cost:
            problems.append(f"ledger rows for {key[1]} {key[2]} without a counter")
    for key, amount in held.items():
        if any(amount):
            problems.append(f"open lease for {key[1]} {key[2]} without a counter")
    figures = {
        "ledger_rows": len(ledger),
        "ledger_tokens": sum(r["tokens"] for r in ledger),
        "tokens_still_reserved": reserved,
        "open_leases": len(leases),
        "last_lease_expiry": max((r["expires_at"].isoformat() for r in leases), default=None),
    }
    return figures, problems[:50]


async def audit_chains(cluster: Cluster, tenants: list[Tenant]) -> Result:
    problems = []
    checked = 0
    for tenant in tenants:
        response = await cluster.call(
            "GET /v1/audit/verify", "GET", "/v1/audit/verify", key=tenant.admin_key
        )
        if response is None or response.status_code != 200:
            problems.append(
                f"audit verify of {tenant.slug} answered {response and response.status_code}"
            )
            continue
        body = response.json()
        checked += body["events_checked"]
        if not body["ok"]:
            problems.append(f"audit chain of {tenant.slug} broken at {body['first_bad_sequence']}")
    return {"events_checked": checked}, problems


def audit_cli(topology: Topology, tenant: Tenant) -> Result:
    """``bulwark audit verify`` as an operator would run it."""
    done = subprocess.run(
        [str(topology._bulwark), "audit", "verify", "--tenant", tenant.slug],
        env=topology.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    problems = [] if done.returncode == 0 else [f"bulwark audit verify: {done.stdout!r}"]
    return {"cli_exit": done.returncode}, problems


def no_plaintext(topology: Topology, tenants: list[Tenant]) -> Result:
    """No document, question or answer text in clear anywhere it is stored or logged: the
    tenants' marker words appear in every document and question, so a database dump, an S3
    object, a vector payload or a log line holding one is plaintext written."""
    markers = [t.marker.encode() for t in tenants]
    places: dict[str, bytes] = {}
    for name, database in topology.databases.items():
        dump = subprocess.run(
            [PG_DUMP, "--data-only", topology.owner_dsn(database)],
            capture_output=True,
            timeout=300,
            check=True,
        )
        places[f"postgres:{name}"] = dump.stdout
    s3 = boto3.client(
        "s3",
        region_name=AWS_REGION,
        endpoint_url=topology.moto_url,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    objects = 0
    blobs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=topology.bucket):
        for item in page.get("Contents", []):
            blobs.append(s3.get_object(Bucket=topology.bucket, Key=item["Key"])["Body"].read())
            objects += 1
    places["s3"] = b"\n".join(blobs)
    places["qdrant"] = repr(asyncio.run(_points(topology))).encode()
    for log in topology.logs.glob("*.log"):
        if log.name.startswith(("api-", "worker-")):
            places[f"log:{log.name}"] = log.read_bytes()
    problems = [
        f"{place} holds plaintext of {marker.decode()}"
        for place, data in places.items()
        for marker in markers
        if marker in data
    ]
    return {"places_scanned": len(places), "s3_objects": objects}, problems
