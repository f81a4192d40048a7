"""Logs, traces, request metrics and request ids.

Logs are JSON lines carrying the request id and trace id. They never contain request or
response bodies, query strings or submitted values: the access line names the route template,
not the concrete path, and SQL parameters are hidden at the engine.

The server span, the access line and the request metrics are all taken in one place, the
outermost layer of the application (``TracingMiddleware``), around Litestar's routing and its
exception handlers: the status they record is the status the response was sent with, whether the
request failed in a handler, in a middleware (authentication), in routing (404, 405) or nowhere.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import uuid
from typing import Any, cast

import structlog
import structlog.tracebacks
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.plugins.opentelemetry import (
    OpenTelemetryConfig,
    OpenTelemetryInstrumentationMiddleware,
)
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from prometheus_client import Counter, Gauge, Histogram

from kernel.settings import ObservabilitySettings

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = structlog.get_logger("bulwark.access")
# The ``path`` label of a request that matched no route (404, 405; its access line has no route):
# never the path itself, which a client chooses (and a scanner would turn into a series each).
UNMATCHED_ROUTE = "unmatched"
# Likewise the method label: any other token a client sends as a method is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
METRICS_PATH = "/metrics"
_tracer_provider: TracerProvider | None = None


def configure_logging(settings: ObservabilitySettings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks as data, without frame locals: locals hold headers, keys and bodies.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Uvicorn's own access log prints raw paths and query strings; ours prints route templates.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs full URLs at INFO; those can carry identifiers, so keep it to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class _RecordWhenConsumed(Sampler):
    """Spans are recorded only while something consumes them (an OTLP exporter, or any span
    processor added later). Until then each span is a non-recording one: it still has its trace
    and span ids, which the log lines and the ``traceparent`` sent to model servers carry, but
    it costs next to nothing on the request path."""

    def __init__(self) -> None:
        self.consumed = False
        self._recording = ParentBased(ALWAYS_ON)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        if not self.consumed:
            return SamplingResult(Decision.DROP)
        return self._recording.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "RecordWhenConsumed"


class RecordingOnDemandProvider(TracerProvider):
    """The process's tracer provider: spans are recorded once a span processor is added."""

    def __init__(self, resource: Resource) -> None:
        self._sampling = _RecordWhenConsumed()
        super().__init__(resource=resource, sampler=self._sampling)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._sampling.consumed = True

    @property
    def recording(self) -> bool:
        return self._sampling.consumed


class TracingMiddleware(OpenTelemetryInstrumentationMiddleware):
    """The outermost layer: the server span, and within it the access line and the request
    metrics (``observe_requests``).

    Litestar places its OpenTelemetry middleware around the whole application, routing and the
    app's exception handlers included, whichever position it is given in the middleware list.
    Only there is every response seen as it is sent: an error raised in a route's middleware
    (authentication's 401) travels up through the route's other middleware as an exception and
    becomes a response only above them, and a request that matches no route never reaches them.

    OpenTelemetry's ASGI middleware records the span while spans are recorded. Until then a
    request only joins the caller's trace (``traceparent``), or starts one, with a non-recording
    server span: its ids still reach the log lines and the model servers, and the middleware's
    per-request work for a span nobody records (attributes, hooks, its no-op metrics) is
    skipped."""

    def __init__(self, app: ASGIApp, config: OpenTelemetryConfig) -> None:
        app = observe_requests(app)
        super().__init__(app, config)
        self.next_app = app
        self.provider = config.tracer_provider
        self.tracer = trace.get_tracer("bulwark.http", tracer_provider=config.tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if getattr(self.provider, "recording", True):
            await super().__call__(scope, receive, send)
            return
        parent = propagate.extract(cast(dict[str, Any], scope), getter=asgi_getter)
        span = self.tracer.start_span("request", context=parent, kind=trace.SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.next_app(scope, receive, send)
        finally:
            otel_context.detach(token)


def configure_tracing(settings: ObservabilitySettings) -> TracerProvider:
    """One tracer provider per process; spans are exported only when an OTLP endpoint is set
    (and recorded only when exported: ``_RecordWhenConsumed``)."""
    global _tracer_provider
    if _tracer_provider is None:
        provider = RecordingOnDemandProvider(
            Resource.create({"service.name": settings.service_name})
        )
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
            )
        trace.set_tracer_provider(provider)
        _tracer_provider = provider
    return _tracer_provider


def ensure_request_id(scope: Scope) -> str:
    """The request id: the caller's ``X-Request-ID`` when well-formed, otherwise a new one."""
    state = scope.setdefault("state", {})
    request_id: str | None = state.get("request_id")
    if request_id is None:
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        state["request_id"] = request_id
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: every HTTP response, errors and 404s included, echoes the id."""
    if message["type"] == "http.response.start" and scope["type"] == ScopeType.HTTP:
        headers = MutableScopeHeaders.from_message(message)
        headers[REQUEST_ID_HEADER] = ensure_request_id(scope)


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


# The families and labels of Litestar's ``PrometheusMiddleware``, which these replace (dashboards
# and alert rules query them): that middleware runs inside each route's middleware stack, so it
# counted a request refused by authentication as a 200, and never saw a 404 or 405 from routing.
APP_NAME = "bulwark"
_LABELS = ("method", "path", "status_code", "app_name")
REQUESTS = Counter("litestar_requests_total", "Total requests", _LABELS)
REQUEST_DURATION = Histogram(
    "litestar_request_duration_seconds", "Request duration, in seconds", _LABELS
)
REQUESTS_IN_PROGRESS = Gauge(
    "litestar_requests_in_progress",
    "Total requests currently in progress",
    ("method", "app_name"),
    multiprocess_mode="livesum",
)


def observe_requests(app: ASGIApp) -> ASGIApp:
    """The access line and the request metrics of every HTTP request, with the status it was
    answered with (``TracingMiddleware`` puts this outside routing and the exception handlers).
    Scrapes of ``/metrics`` are logged, not counted."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=ensure_request_id(scope), trace_id=current_trace_id()
        )
        method = scope["method"]
        method_label = method if method in _METHODS else "other"
        counted = scope["path"] != METRICS_PATH
        # What the server answers when the application ends without starting a response.
        status = 500
        started = time.perf_counter()
        if counted:
            REQUESTS_IN_PROGRESS.labels(method_label, APP_NAME).inc()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            # Set by the router once a route matched (same scope, so visible out here).
            route: str | None = scope.get("path_template")
            access_log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
            if counted:
                REQUESTS_IN_PROGRESS.labels(method_label, APP_NAME).dec()
                labels = (method_label, route or UNMATCHED_ROUTE, str(status), APP_NAME)
                REQUESTS.labels(*labels).inc()
                REQUEST_DURATION.labels(*labels).observe(elapsed)

    return middleware


# A tenant label per tenant would let a large fleet blow up the series count: metrics carry the
# tenant id for the first MAX_TENANT_LABELS tenants a process sees and "other" after that (the
# audit log and the usage ledger keep the exact per-tenant record).
MAX_TENANT_LABELS = 500
OTHER_TENANTS = "other"
_labelled: set[str] = set()
_labelled_lock = threading.Lock()


def tenant_label(tenant_id: object) -> str:
    key = str(tenant_id)
    with _labelled_lock:
        if key in _labelled:
            return key
        if len(_labelled) < MAX_TENANT_LABELS:
            _labelled.add(key)
            return key
    return OTHER_TENANTS
