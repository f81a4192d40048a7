"""One chat request as a trace: a span per step of the path in docs/ARCHITECTURE.md under the
request's server span, GenAI attributes on the model call, the trace context carried to the model
server, and no prompt text in any attribute."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kernel.observability import configure_tracing
from kernel.settings import ObservabilitySettings
from tests.peers.llm_peer import LlmPeer
from tests.support.chat import ANSWER, QUESTION, travel_tenant
from tests.support.documents import add
from tests.support.tenants import Api

STEPS = [
    "auth",
    "dlp.inbound",
    "cache.lookup",
    "retrieve",
    "compose_prompt",
    "llm.generate",
    "dlp.outbound",
    "groundedness",
    "audit.append",
]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing(ObservabilitySettings()).add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_a_chat_request_is_one_trace_with_a_span_per_step(
    chat: Api, peer: LlmPeer, spans: InMemorySpanExporter
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    spans.clear()
    response = await chat.client.post("/v1/chat", json={"message": QUESTION}, headers=tenant.admin)
    assert response.status_code == 200, response.text

    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name.startswith("POST /v1/chat"))
    trace_id = server.context.trace_id
    mine = [s for s in finished if s.context.trace_id == trace_id]
    names = [s.name for s in sorted(mine, key=lambda s: s.start_time or 0)]
    for step in STEPS:
        assert step in names, (step, names)
    ordered = [n for n in names if n in STEPS]
    assert ordered.index("dlp.inbound") < ordered.index("retrieve") < ordered.index("llm.generate")
    assert (
        ordered.index("llm.generate")
        < ordered.index("dlp.outbound")
        < ordered.index("audit.append")
    )
    # Every step hangs off the request's server span (directly or through another step).
    by_id = {s.context.span_id: s for s in mine}
    for span in mine:
        if span.name in STEPS:
            parent = span.parent
            while parent is not None and parent.span_id != server.context.span_id:
                parent = by_id[parent.span_id].parent if parent.span_id in by_id else None
            assert parent is not None, span.name

    llm = next(s for s in mine if s.name == "llm.generate")
    attributes = dict(llm.attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["bulwark.tier"] in ("small", "mid", "frontier")
    assert attributes["gen_ai.request.model"] and attributes["gen_ai.system"]
    assert attributes["bulwark.cost_usd"] > 0
    # The model server received the trace context.
    assert peer.requests[-1]["traceparent"].split("-")[1] == format(trace_id, "032x")
    # No attribute anywhere holds the question or the answer.
    for span in mine:
        for value in (span.attributes or {}).values():
            assert QUESTION not in str(value) and "180 euros" not in str(value), span.name


async def test_an_ingestion_job_is_its_own_trace_linked_to_the_request_that_queued_it(
    chat: Api, spans: InMemorySpanExporter
) -> None:
    tenant = await chat.new_tenant("eu")
    spans.clear()
    accepted = await add(chat, tenant, "Travel policy", "Taxis are refunded up to 40 euros.")

    finished = spans.get_finished_spans()
    upload = next(s for s in finished if s.name.startswith("POST /v1/documents"))
    [job] = [s for s in finished if s.name == "job.run"]
    assert job.context.trace_id != upload.context.trace_id and job.parent is None
    assert [link.context.span_id for link in job.links] == [upload.context.span_id]
    attributes = dict(job.attributes or {})
    assert attributes["bulwark.job.id"] == accepted["job_id"]
    assert attributes["bulwark.job.kind"] == "ingest"
    # The job's steps are spans of the job's trace.
    steps = {s.name for s in finished if s.context.trace_id == job.context.trace_id}
    assert {"ingest.parse", "ingest.dlp", "ingest.embed", "ingest.upsert"} <= steps
