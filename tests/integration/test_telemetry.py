"""Telemetry tells the truth: for every class of answer, the status the client receives is the one
in the access log line, in ``litestar_requests_total`` and on the request's server span.

Each case sends one request carrying its own ``X-Request-ID`` and ``traceparent`` and then looks
for that request in all three places. The deployment is real: a model peer over HTTP for the
gateway, the us region's database unreachable for the 503, a small body limit for the 413, spans
exported in memory (OpenTelemetry's SDK exporter) as an OTLP exporter would receive them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

import app.main
from app.main import create_app
from auth.middleware import EXCLUDE_FROM_AUTH
from kernel.observability import UNMATCHED_ROUTE, RecordingOnDemandProvider
from kernel.settings import GatewaySettings, ModelEndpointSettings, RouterSettings, Settings
from tests.peers.llm_peer import LlmPeer, RunningPeer
from tests.support.deployments import Deployment
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle

UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
MAX_BODY = 4096
CHAT = "/v1/gateway/chat/completions"
BUG = "/v1/telemetry-test/bug"
BUG_DETAIL = "bug-detail-that-must-not-reach-the-client"


async def _bug() -> None:
    raise RuntimeError(BUG_DETAIL)


def _settings(base: Settings, peer: LlmPeer) -> Settings:
    regions = dict(base.regions)
    regions["eu"] = regions["eu"].model_copy(
        update={
            "models": tuple(
                ModelEndpointSettings(
                    name=f"eu-{tier}",
                    tier=tier,
                    base_url=peer.base_url,
                    model=f"{tier}-model",
                    context_window=32000,
                )
                for tier in ("small", "mid", "frontier")
            )
        }
    )
    regions["us"] = regions["us"].model_copy(update={"database_url": UNREACHABLE})
    return base.model_copy(
        update={
            "regions": regions,
            "server": base.server.model_copy(update={"max_body_bytes": MAX_BODY}),
            "gateway": GatewaySettings(router=RouterSettings(classifier="none")),
        }
    )


@dataclass
class World:
    client: AsyncTestClient[Litestar]
    api: Api
    tenant: TenantHandle
    member: dict[str, str]
    spans: InMemorySpanExporter


@pytest.fixture(scope="module")
def peer() -> Iterator[LlmPeer]:
    with RunningPeer(LlmPeer(name="telemetry")) as running:
        yield running


@pytest.fixture(scope="module")
async def world(deployment: Deployment, peer: LlmPeer) -> AsyncIterator[World]:
    spans = InMemorySpanExporter()
    provider = RecordingOnDemandProvider(Resource.create({"service.name": "telemetry-test"}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with pytest.MonkeyPatch.context() as patch:
        # This app's spans go to the test's exporter, not to the process-wide provider.
        patch.setattr(app.main, "configure_tracing", lambda _settings: provider)
        litestar = create_app(_settings(deployment.settings, peer))
    # A handler with a bug: what an unexpected exception looks like from outside.
    litestar.register(get(BUG, opt={EXCLUDE_FROM_AUTH: True})(_bug))
    async with AsyncTestClient(app=litestar) as client:
        api = Api(client)
        tenant = await api.new_tenant("eu")
        member = await api.new_user(tenant)
        key = (await api.new_key(tenant, member["id"]))["key"]
        yield World(client, api, tenant, bearer(key), spans)


Send = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


async def _rate_limited(world: World, headers: dict[str, str]) -> httpx.Response:
    tenant = await world.api.new_tenant("eu")
    rates = {"requests": {"identity_per_minute": 1}}
    put = await world.client.put("/v1/admin/quotas", json=rates, headers=tenant.admin)
    assert put.status_code == 200, put.text
    if time.time() % 60 > 55:  # both requests in one minute's window
        await asyncio.sleep(61 - time.time() % 60)
    first = await world.client.post(CHAT, json=_ask(), headers=tenant.admin)
    assert first.status_code == 200, first.text
    return await world.client.post(CHAT, json=_ask(), headers={**tenant.admin, **headers})


def _ask(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], **extra}


@dataclass
class Case:
    send: Send
    status: int
    method: str
    route: str | None  # the route template; None where no route matched
    code: str | None = None  # the problem's code
    media: str = "application/json"
    label: str | None = None  # the method label, where it is not the method

    @property
    def method_label(self) -> str:
        return self.label or self.method


CASES: dict[str, Case] = {
    "ok": Case(
        lambda w, h: w.client.get("/v1/me", headers={**w.tenant.admin, **h}), 200, "GET", "/v1/me"
    ),
    "streamed": Case(
        lambda w, h: w.client.post(CHAT, json=_ask(stream=True), headers={**w.tenant.admin, **h}),
        200,
        "POST",
        CHAT,
        media="text/event-stream",
    ),
    "authentication": Case(lambda w, h: w.client.get("/v1/me", headers=h), 401, "GET", "/v1/me"),
    "bad credential": Case(
        lambda w, h: w.client.get("/v1/me", headers={**bearer("bwk_wrong"), **h}),
        401,
        "GET",
        "/v1/me",
    ),
    "forbidden": Case(
        lambda w, h: w.client.get("/v1/admin/users", headers={**w.member, **h}),
        403,
        "GET",
        "/v1/admin/users",
    ),
    "validation": Case(
        lambda w, h: w.client.post(
            "/v1/admin/users",
            content=b'{"email": ',
            headers={**w.tenant.admin, "Content-Type": "application/json", **h},
        ),
        400,
        "POST",
        "/v1/admin/users",
        "bad_request",
    ),
    "semantic validation": Case(
        lambda w, h: w.client.post("/auth/logout", headers={**w.tenant.admin, **h}),
        422,
        "POST",
        "/auth/logout",
        "not_a_session",
    ),
    "no such resource": Case(
        lambda w, h: w.client.get(
            f"/v1/admin/users/{uuid.uuid4()}", headers={**w.tenant.admin, **h}
        ),
        404,
        "GET",
        "/v1/admin/users/{user_id}",
    ),
    "no such route": Case(
        lambda w, h: w.client.get("/v1/nothing-here", headers={**w.tenant.admin, **h}),
        404,
        "GET",
        None,
        "not_found",
    ),
    "method not allowed": Case(
        lambda w, h: w.client.put("/v1/me", headers={**w.tenant.admin, **h}),
        405,
        "PUT",
        None,
        "method_not_allowed",
    ),
    "unknown method": Case(
        lambda w, h: w.client.request("BREW", "/v1/me", headers={**w.tenant.admin, **h}),
        405,
        "BREW",
        None,
        "method_not_allowed",
        label="other",  # a client's made-up method never becomes a series of its own
    ),
    "body too large": Case(
        lambda w, h: w.client.post(
            "/v1/admin/groups",
            content=b'{"name": "' + b"a" * MAX_BODY + b'"}',
            headers={**w.tenant.admin, "Content-Type": "application/json", **h},
        ),
        413,
        "POST",
        "/v1/admin/groups",
        "payload_too_large",
    ),
    "rate limited": Case(_rate_limited, 429, "POST", CHAT, "rate_limited"),
    "upstream unavailable": Case(
        lambda w, h: w.client.post(
            "/v1/tenants",
            json={"slug": f"u-{uuid.uuid4().hex[:8]}", "name": "US", "region": "us"},
            headers={**w.api.operator, **h},
        ),
        503,
        "POST",
        "/v1/tenants",
        "database_unavailable",
    ),
    "unhandled": Case(lambda w, h: w.client.get(BUG, headers=h), 500, "GET", BUG, "internal_error"),
}


def _requests_total(text: str, method: str, path: str, status: int) -> float:
    wanted = {"method": method, "path": path, "status_code": str(status), "app_name": "bulwark"}
    for family in text_string_to_metric_families(text):
        if family.name == "litestar_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == wanted:
                    return sample.value
    return 0.0


class AccessLines:
    """The JSON log lines the app writes, through the formatter it configured."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.getLogger().handlers[0].formatter)

    def of(self, request_id: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [
            line
            for line in lines
            if line.get("request_id") == request_id and line.get("event") == "request"
        ]


@pytest.fixture
def access_lines(world: World) -> Iterator[AccessLines]:
    lines = AccessLines()
    root = logging.getLogger()
    root.addHandler(lines.handler)
    try:
        yield lines
    finally:
        root.removeHandler(lines.handler)


def _server_span(spans: InMemorySpanExporter, trace_id: str) -> ReadableSpan:
    found = [
        span
        for span in spans.get_finished_spans()
        if span.kind is trace.SpanKind.SERVER and format(span.context.trace_id, "032x") == trace_id
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_the_status_sent_is_the_status_logged_counted_and_traced(
    world: World, access_lines: AccessLines, case: Case
) -> None:
    request_id = f"telemetry-{secrets.token_hex(8)}"
    trace_id = secrets.token_hex(16)
    headers = {"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-{'1' * 16}-01"}
    labels = (case.method_label, case.route or UNMATCHED_ROUTE, case.status)
    before = _requests_total((await world.client.get("/metrics")).text, *labels)

    response = await case.send(world, headers)

    # What the client saw.
    if case.status < 400:
        assert response.status_code == case.status, response.text
        assert response.headers["content-type"].startswith(case.media)
    else:
        problem = assert_problem(response, case.status, case.code)
        assert problem["request_id"] == request_id
        assert BUG_DETAIL not in response.text
    # The access line: one, with that status and the route template.
    (line,) = access_lines.of(request_id)
    assert line["status"] == case.status
    assert line["route"] == case.route
    assert line["method"] == case.method
    assert line["trace_id"] == trace_id
    # The request counter: one more under that status.
    after = _requests_total((await world.client.get("/metrics")).text, *labels)
    assert after == before + 1
    # The server span: the status attribute, and ERROR for a 5xx only (OTel HTTP semconv).
    span = _server_span(world.spans, trace_id)
    assert span.attributes is not None
    assert span.attributes["http.status_code"] == case.status
    expected = StatusCode.ERROR if case.status >= 500 else StatusCode.UNSET
    assert span.status.status_code is expected
