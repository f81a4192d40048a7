"""Requests join the caller's trace whether or not spans are recorded: with nothing consuming
spans, the server span is a non-recording one that still carries the caller's trace id (to the
log lines and onward to model servers); once a processor is added, spans are recorded."""

from __future__ import annotations

from typing import Any

from litestar.plugins.opentelemetry import OpenTelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kernel.observability import RecordingOnDemandProvider, TracingMiddleware

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


async def _call(middleware: TracingMiddleware) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/me",
        "raw_path": b"/v1/me",
        "query_string": b"",
        "headers": [(b"traceparent", TRACEPARENT.encode())],
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
        "root_path": "",
        "state": {},
    }
    await middleware(scope, receive, send)  # type: ignore[arg-type]


def _app(seen: dict[str, Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        span = trace.get_current_span()
        seen["trace_id"] = format(span.get_span_context().trace_id, "032x")
        seen["recording"] = span.is_recording()
        outbound: dict[str, str] = {}
        propagate.inject(outbound)  # what a model server would be sent
        seen["outbound"] = outbound.get("traceparent", "")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def test_a_request_joins_the_callers_trace_recorded_or_not() -> None:
    provider = RecordingOnDemandProvider(Resource.create({"service.name": "test"}))
    config = OpenTelemetryConfig(tracer_provider=provider, middleware_class=TracingMiddleware)
    seen: dict[str, Any] = {}
    middleware = TracingMiddleware(_app(seen), config)

    await _call(middleware)
    assert seen["trace_id"] == CALLER_TRACE
    assert seen["recording"] is False
    assert seen["outbound"].split("-")[1] == CALLER_TRACE

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen.clear()
    await _call(middleware)
    assert seen["trace_id"] == CALLER_TRACE and seen["recording"] is True
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
