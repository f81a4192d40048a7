"""The load: a bounded mix of chat, search, ingest, job polls, document lists and SCIM requests
from several tenants at a fixed concurrency, sent the way a client behind a load balancer would.

The client spreads requests over the API processes; a transport error (connection refused or
reset: the process died) is recorded and the request goes to the next process, as a load
balancer with passive health checks would do. Every answer is checked as it arrives: no 500,
every 5xx a problem+json 503 with ``Retry-After``, and nothing of another tenant in it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TOPICS = (
    "travel",
    "expenses",
    "security",
    "holidays",
    "hardware",
    "onboarding",
    "privacy",
    "training",
)


@dataclass
class Tenant:
    slug: str
    id: str
    marker: str  # a word in every document of this tenant, and in no other tenant's
    admin_key: str
    member_keys: list[str]
    scim_token: str
    documents: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    scim_users: list[tuple[str, str]] = field(default_factory=list)  # (id, userName)

    def text(self, topic: str, n: int, paragraphs: int = 6) -> str:
        body = [f"# {topic.title()} policy {n} of {self.marker}"]
        for p in range(paragraphs):
            body.append(
                f"## Section {p}\n\n{self.marker} staff follow rule {n}.{p} on {topic}: "
                f"requests of category {p} need approval within {p + 2} days, and the "
                f"{topic} budget line {n * 10 + p} applies to every {self.marker} office."
            )
        return "\n\n".join(body)


@dataclass
class Sample:
    route: str
    phase: str
    kind: str  # "ok", "<status> <code>", or "transport <Exception>"
    seconds: float


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # (tenant slug, document id) pairs seen in answers: checked against the database at the end.
    seen_documents: set[tuple[str, str]] = field(default_factory=set)
    fallbacks: Counter[str] = field(default_factory=Counter)
    _waiting: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def add(self, route: str, phase: str, kind: str, seconds: float) -> None:
        self.samples.append(Sample(route, phase, kind, seconds))
        for count, event in self._waiting:
            if len(self.samples) >= count:
                event.set()

    async def reached(self, count: int) -> None:
        """Return once ``count`` requests have been recorded in all."""
        event = asyncio.Event()
        self._waiting.append((count, event))
        if len(self.samples) >= count:
            event.set()
        await event.wait()
        self._waiting.remove((count, event))

    def violation(self, message: str) -> None:
        if len(self.violations) < 200:
            self.violations.append(message)


def _kind(response: httpx.Response) -> str:
    if response.status_code < 400:
        return "ok"
    code = ""
    if response.headers.get("content-type", "").startswith("application/scim+json"):
        return f"{response.status_code} scim"  # SCIM errors carry no problem code
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
            code = str(body.get("code") or body.get("scimType") or "")
        except ValueError:
            code = "not-json"
    return f"{response.status_code} {code}".strip()


class Cluster:
    """The API processes behind a client-side balancer (round robin, passive health)."""

    def __init__(self, urls: dict[str, str], recorder: Recorder, concurrency: int) -> None:
        self.urls = urls
        self.recorder = recorder
        self.order = itertools.cycle(list(urls))
        self.down_until: dict[str, float] = {}
        limits = httpx.Limits(
            max_connections=concurrency * 2, max_keepalive_connections=concurrency
        )
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, connect=3))
        self.phase = "setup"

    async def aclose(self) -> None:
        await self.client.aclose()

    def _next(self) -> str:
        now = time.monotonic()
        for _ in range(len(self.urls)):
            name = next(self.order)
            if self.down_until.get(name, 0) <= now:
                return name
        return next(self.order)

    async def call(
        self, route: str, method: str, path: str, *, key: str, **kwargs: Any
    ) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        for _ in range(4):
            name = self._next()
            started = time.perf_counter()
            try:
                response = await self.client.request(
                    method, self.urls[name] + path, headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                self.recorder.add(
                    route,
                    self.phase,
                    f"transport {type(exc).__name__}",
                    time.perf_counter() - started,
                )
                self.down_until[name] = time.monotonic() + 1.0
                await asyncio.sleep(0.05)
                continue
            self.recorder.add(route, self.phase, _kind(response), time.perf_counter() - started)
            self._check(route, response)
            return response
        return None

    def _check(self, route: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 500:
            return
        where = f"{self.phase} {route}"
        if status != 503:
            self.recorder.violation(f"{where}: HTTP {status} {response.text[:200]}")
            return
        if not response.headers.get("content-type", "").startswith(
            ("application/problem+json", "application/scim+json")
        ):
            self.recorder.violation(f"{where}: 503 without problem details")
        if not response.headers.get("retry-after"):
            self.recorder.violation(f"{where}: 503 without Retry-After ({_kind(response)})")


Op = Callable[[Tenant, int], Awaitable[None]]


class Workload:
    """The request mix; ``weights`` sets each operation's share."""

    DEFAULT_WEIGHTS = {
        "chat": 30,
        "search": 30,
        "ingest": 12,
        "job": 8,
        "documents": 5,
        "scim_create": 7,
        "scim_filter": 5,
        "scim_patch": 3,
    }

    def __init__(self, cluster: Cluster, tenants: list[Tenant], seed: int = 12) -> None:
        self.cluster = cluster
        self.tenants = tenants
        self.markers = {t.marker for t in tenants}
        self.rng = random.Random(seed)
        self.serial = itertools.count(1)
        self.ops: dict[str, Op] = {
            "chat": self.chat,
            "search": self.search,
            "ingest": self.ingest,
            "job": self.job,
            "documents": self.documents,
            "scim_create": self.scim_create,
            "scim_filter": self.scim_filter,
            "scim_patch": self.scim_patch,
        }

    @property
    def recorder(self) -> Recorder:
        return self.cluster.recorder

    async def run(
        self, requests: int, concurrency: int, weights: dict[str, int] | None = None
    ) -> float:
        """Send ``requests`` operations; returns the wall time."""
        chosen = weights or self.DEFAULT_WEIGHTS
        names, shares = list(chosen), list(chosen.values())
        plan = [
            (self.rng.choice(self.tenants), self.rng.choices(names, shares)[0], next(self.serial))
            for _ in range(requests)
        ]
        queue = iter(plan)

        async def worker() -> None:
            for tenant, op, n in queue:
                await self.ops[op](tenant, n)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    # -- checks of what comes back ----------------------------------------------------------

    def _foreign(self, tenant: Tenant, text: str) -> bool:
        return any(m in text for m in self.markers - {tenant.marker})

    def _saw(self, tenant: Tenant, document_id: str, text: str, route: str) -> None:
        self.recorder.seen_documents.add((tenant.slug, document_id))
        if self._foreign(tenant, text):
            self.recorder.violation(f"{route}: {tenant.slug} received another tenant's text")

    # -- operations -------------------------------------------------------------------------

    def _member(self, tenant: Tenant) -> str:
        return self.rng.choice(tenant.member_keys)

    async def chat(self, tenant: Tenant, n: int) -> None:
        topic = TOPICS[n % len(TOPICS)]
        question = f"Which approval rule applies to {topic} requests of {tenant.marker}, case {n}?"
        response = await self.cluster.call(
            "POST /v1/chat",
            "POST",
            "/v1/chat",
            key=self._member(tenant),
            json={"message": question},
        )
        if response is None or response.status_code != 200:
            return
        body = response.json()
        if "+fallback" in body["model"]["reason"]:
            self.recorder.fallbacks[self.cluster.phase] += 1
        for citation in body["citations"]:
            self._saw(tenant, citation["document_id"], citation["quote"], "chat")
        if self._foreign(tenant, body["answer"]):
            self.recorder.violation(f"chat: {tenant.slug} answer names another tenant")

    async def search(self, tenant: Tenant, n: int) -> None:
        topic = TOPICS[n % len(TOPICS)]
        response = await self.cluster.call(
            "POST /v1/search",
            "POST",
            "/v1/search",
            key=self._member(tenant),
            json={"query": f"{topic} budget line approval {n % 7}", "top_k": 5},
        )
        if response is None or response.status_code != 200:
            return
        for hit in response.json()["hits"]:
            self._saw(tenant, hit["document_id"], hit["text"], "search")
            if tenant.marker not in hit["text"] and tenant.marker not in hit.get("title", ""):
                # Every chunk of a tenant's document names the tenant (see ``Tenant.text``).
                self.recorder.violation(f"search: {tenant.slug} got a chunk without its marker")

    async def ingest(self, tenant: Tenant, n: int, *, paragraphs: int = 6) -> None:
        topic = TOPICS[n % len(TOPICS)]
        response = await self.cluster.call(
            "POST /v1/documents",
            "POST",
            "/v1/documents",
            key=self.rng.choice([tenant.admin_key, *tenant.member_keys]),
            json={
                "title": f"{topic.title()} policy {n} ({tenant.marker})",
                "text": tenant.text(topic, n, paragraphs),
                "acl": {"visibility": "tenant", "classification": 0},
            },
        )
        if response is not None and response.status_code == 202:
            body = response.json()
            tenant.documents.add(body["document_id"])
            if body["job_id"]:
                tenant.jobs.add(body["job_id"])

    async def job(self, tenant: Tenant, n: int) -> None:
        if not tenant.jobs:
            return await self.search(tenant, n)
        job_id = self.rng.choice(sorted(tenant.jobs))
        response = await self.cluster.call(
            "GET /v1/jobs/{id}", "GET", f"/v1/jobs/{job_id}", key=tenant.admin_key
        )
        if response is not None and response.status_code == 404:
            self.recorder.violation(f"job: {tenant.slug} cannot see its own job {job_id}")

    async def documents(self, tenant: Tenant, n: int) -> None:
        response = await self.cluster.call(
            "GET /v1/documents", "GET", "/v1/documents?limit=100", key=self._member(tenant)
        )
        if response is None or response.status_code != 200:
            return
        for item in response.json()["items"]:
            self._saw(tenant, item["id"], item.get("title", ""), "documents")

    def _scim(self, tenant: Tenant) -> tuple[str, dict[str, str]]:
        return f"/scim/v2/{tenant.slug}", {"Content-Type": "application/scim+json"}

    async def scim_create(self, tenant: Tenant, n: int) -> None:
        base, headers = self._scim(tenant)
        user_name = f"load-{n}-{uuid.uuid4().hex[:6]}@{tenant.slug}.example"
        response = await self.cluster.call(
            "POST /scim/v2/{t}/Users",
            "POST",
            f"{base}/Users",
            key=tenant.scim_token,
            headers=headers,
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "displayName": f"Load {n}",
                "active": True,
                "emails": [{"value": user_name, "primary": True}],
            },
        )
        if response is not None and response.status_code == 201:
            tenant.scim_users.append((response.json()["id"], user_name))

    async def scim_filter(self, tenant: Tenant, n: int) -> None:
        base, _ = self._scim(tenant)
        response = await self.cluster.call(
            "GET /scim/v2/{t}/Users",
            "GET",
            f"{base}/Users",
            key=tenant.scim_token,
            params={"filter": 'userName sw "load-"', "count": "50"},
        )
        if response is None or response.status_code != 200:
            return
        for resource in response.json().get("Resources", []):
            if not resource["userName"].endswith(f"@{tenant.slug}.example"):
                self.recorder.violation(f"scim: {tenant.slug} listed another tenant's user")

    async def scim_patch(self, tenant: Tenant, n: int) -> None:
        if not tenant.scim_users:
            return await self.scim_create(tenant, n)
        user_id, _ = self.rng.choice(tenant.scim_users)
        base, headers = self._scim(tenant)
        await self.cluster.call(
            "PATCH /scim/v2/{t}/Users/{id}",
            "PATCH",
            f"{base}/Users/{user_id}",
            key=tenant.scim_token,
            headers=headers,
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "replace", "path": "displayName", "value": f"Load {n} renamed"}
                ],
            },
        )


def figures(recorder: Recorder, wall: float) -> dict[str, Any]:
    """requests/s, p50/p99 per route (successful requests), errors by kind."""
    by_route: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    phases: dict[str, Counter[str]] = defaultdict(Counter)
    samples = [s for s in recorder.samples if s.phase != "setup"]
    for s in samples:
        phases[s.phase][s.kind] += 1
        if s.kind == "ok":
            by_route[s.route].append(s.seconds)
        else:
            errors[f"{s.route}: {s.kind}"] += 1

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 1)

    return {
        "requests": len(samples),
        "wall_seconds": round(wall, 1),
        "requests_per_second": round(len(samples) / wall, 1) if wall else None,
        "routes": {
            route: {"ok": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)}
            for route, v in sorted(by_route.items())
        },
        "errors_by_kind": dict(errors.most_common()),
        "outcomes_by_phase": {phase: dict(c) for phase, c in phases.items()},
    }
