"""Background jobs on taskiq: ingestion and re-indexing, batch completions, subject-access erasure.

taskiq is an asyncio-native task queue whose brokers run in process (``InMemoryBroker``, the
embedded default) or across machines over RabbitMQ, Redis or PostgreSQL without changing the task
code — the scale-out path (issue 12). Bulwark keeps the job's state in the tenant's own database
(``jobs``), so the API can report it and the task can be idempotent: a job that already succeeded
is not run again, a job is retried with exponential backoff on transient failures (database,
KMS, vector store), and a poison job — a permanent failure, or one out of retries — ends visibly
``failed`` with a reason code. Messages carry the tenant id explicitly and nothing else but ids.

A job whose own state cannot be read or written (its database or the control plane is down) is
not lost with its message: the broker acknowledges a message once the task returned, whatever
happened, so the runner puts the job back on the queue after a pause and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.api import run_receiver_task

from kernel.db import utcnow
from kernel.errors import AppError, ServiceUnavailable
from kernel.jobs.models import Job
from kernel.jobs.repositories import JobRepository
from kernel.jobs.schemas import JobStatus
from kernel.tenancy import SystemAuthority, TenantContext, TenantRoute

log = structlog.get_logger("bulwark.jobs")

JOBS_IN_FLIGHT = Gauge("bulwark_jobs_in_flight", "Jobs this process is running now.")
# Queue depth across a fleet is sum(enqueued) - sum(started): API replicas count what they
# enqueue, workers what they take, and Prometheus adds the processes up.
JOBS_ENQUEUED = Counter("bulwark_jobs_enqueued", "Jobs this process put on the queue.")
JOBS_STARTED = Counter("bulwark_jobs_started", "Jobs this process took off the queue (first try).")
JOB_WAIT = Histogram(
    "bulwark_job_wait_seconds",
    "Time from a job's creation to its first start (queue depth and worker lag, as felt).",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)

Handler = Callable[[TenantContext, Job], Awaitable[None]]
# Resolves a tenant id carried by a message to its control-plane route (``None``: no such tenant).
RouteLookup = Callable[[uuid.UUID], Awaitable[TenantRoute | None]]


class TenantTransactions(Protocol):
    """Where a tenant's unit of work is opened (``residency.registry.RegionRegistry``)."""

    def tenant_transaction(
        self, ctx: TenantContext, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[AsyncSession]: ...


_tracer = trace.get_tracer("bulwark.jobs")


class PermanentJobError(Exception):
    """The job can never succeed as submitted (e.g. an unparseable file): no retry."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class JobRunner:
    def __init__(
        self,
        registry: TenantTransactions,
        tenant_route: RouteLookup,
        system: SystemAuthority,
        *,
        broker: AsyncBroker | None = None,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        outage_delay: float = 5.0,
    ) -> None:
        self.registry = registry
        self.tenant_route = tenant_route
        self.system = system
        self.broker = broker or InMemoryBroker()
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        # Pause before a job whose state was out of reach goes back on the queue.
        self.outage_delay = outage_delay
        self.handlers: dict[str, Handler] = {}
        self.failure_hooks: dict[str, Handler] = {}
        # Messages this process has put on the queue: ``drain`` waits until none arrives while
        # it waits for the ones already running.
        self._published = 0

        async def run_job(
            tenant_id: str, job_id: str, trace_context: dict[str, str] | None = None
        ) -> None:
            await self._run(tenant_id, job_id, trace_context or {})

        self._task = self.broker.register_task(run_job, task_name="bulwark.job")

    def handler(self, kind: str, handler: Handler, on_failure: Handler | None = None) -> None:
        self.handlers[kind] = handler
        if on_failure is not None:
            self.failure_hooks[kind] = on_failure

    @property
    def in_process(self) -> bool:
        """True when this process runs the jobs it enqueues (no separate worker)."""
        return isinstance(self.broker, InMemoryBroker)

    async def startup(self, *, worker: bool = False) -> None:
        """Connect to the broker (declares the exchange and queue on RabbitMQ); a ``worker``
        also opens the connection it consumes from."""
        self.broker.is_worker_process = worker
        await self.broker.startup()

    async def shutdown(self) -> None:
        await self.broker.shutdown()

    async def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
        """Queue a job. The message carries ids only: the tenant, the job and the W3C trace
        context of the request that queued it, so the job's span links back to that request."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        await self._publish(str(tenant_id), str(job_id), carrier)
        JOBS_ENQUEUED.inc()

    async def _publish(self, tenant_id: str, job_id: str, trace_context: dict[str, str]) -> None:
        await self._task.kiq(tenant_id, job_id, trace_context)
        self._published += 1

    async def work(self, *, concurrency: int, stop: asyncio.Event) -> None:
        """Consume jobs from a networked broker until ``stop`` is set (``bulwark worker``).

        A job is acknowledged after it ran, so a worker killed mid-job leaves it to be
        redelivered; the job's own state makes the redelivery a no-op once it succeeded.
        """
        if self.in_process:
            raise RuntimeError("no networked broker is configured: jobs run in the API process")
        receiver = asyncio.create_task(
            run_receiver_task(self.broker, max_async_tasks=concurrency, propagate_exceptions=False)
        )
        try:
            await stop.wait()
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver

    async def drain(self) -> None:
        """Wait for in-process jobs to finish (tests, shutdown), including the jobs they queue
        (a retry, a follow-up): ``InMemoryBroker.wait_all`` waits for the tasks running when it
        is called, so it is called again until no message was published meanwhile."""
        if isinstance(self.broker, InMemoryBroker):
            while True:
                published = self._published
                await self.broker.wait_all()
                if self._published == published:
                    return

    async def _run(self, tenant_id: str, job_id: str, trace_context: dict[str, str]) -> None:
        # A job is its own trace (it outlives the request), linked to the request that queued it.
        queued_by = trace.get_current_span(propagate.extract(trace_context)).get_span_context()
        links = [trace.Link(queued_by)] if queued_by.is_valid else []
        JOBS_IN_FLIGHT.inc()
        try:
            with _tracer.start_as_current_span(
                "job.run",
                context=otel_context.Context(),
                links=links,
                attributes={"bulwark.job.id": job_id, "bulwark.tenant.id": tenant_id},
            ):
                await self._attempts(tenant_id, job_id)
        except ServiceUnavailable as exc:
            # The job's state could not be read or written: nothing was decided about it, and
            # the broker drops this message once we return. Queue the job again; it resumes
            # from its stored state (done jobs are skipped, the steps are idempotent).
            log.warning("job_requeued_after_outage", job_id=job_id, error=type(exc).__name__)
            await asyncio.sleep(self.outage_delay)
            await self._publish(tenant_id, job_id, trace_context)
        finally:
            JOBS_IN_FLIGHT.dec()

    async def _attempts(self, tenant_id: str, job_id: str) -> None:
        route = await self.tenant_route(uuid.UUID(tenant_id))
        if route is None or route.deleted:
            return
        ctx = self.system.context(route)
        for attempt in range(1, self.max_attempts + 1):
            job = await self._start(ctx, uuid.UUID(job_id))
            if job is None:
                return
            handler = self.handlers.get(job.kind)
            try:
                if handler is None:
                    raise PermanentJobError("unknown_job_kind", job.kind)
                await handler(ctx, job)
            except PermanentJobError as exc:
                await self._fail(ctx, job, exc.code, exc.detail)
                return
            except (AppError, OSError, TimeoutError, RuntimeError) as exc:
                log.warning(
                    "job_attempt_failed", job_id=job_id, attempt=attempt, error=type(exc).__name__
                )
                if attempt == self.max_attempts:
                    await self._fail(ctx, job, "retries_exhausted", type(exc).__name__)
                    return
                await self._set_status(ctx, job.id, JobStatus.QUEUED)
                await asyncio.sleep(self.base_delay * 2 ** (attempt - 1))
                continue
            await self._finish(ctx, job.id, JobStatus.SUCCEEDED, None, None)
            return

    async def _fail(self, ctx: TenantContext, job: Job, code: str, detail: str) -> None:
        await self._finish(ctx, job.id, JobStatus.FAILED, code, detail)
        hook = self.failure_hooks.get(job.kind)
        if hook is not None:
            await hook(ctx, job)

    async def _start(self, ctx: TenantContext, job_id: uuid.UUID) -> Job | None:
        async with self.registry.tenant_transaction(ctx) as session:
            job = await JobRepository(session, ctx).get(job_id)
            if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return None  # unknown, or already done: idempotent
            job.status = JobStatus.RUNNING
            job.attempts += 1
            trace.get_current_span().set_attribute("bulwark.job.kind", job.kind)
            if job.attempts == 1:
                JOBS_STARTED.inc()
                # Worker lag: how long the job waited in the queue before a worker took it.
                JOB_WAIT.labels(job.kind).observe((utcnow() - job.created_at).total_seconds())
            return job

    async def _set_status(self, ctx: TenantContext, job_id: uuid.UUID, status: JobStatus) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            job = await JobRepository(session, ctx).get(job_id)
            if job is not None:
                job.status = status

    async def _finish(
        self,
        ctx: TenantContext,
        job_id: uuid.UUID,
        status: JobStatus,
        code: str | None,
        detail: str | None,
    ) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            job = await JobRepository(session, ctx).get(job_id)
            if job is not None:
                job.status, job.error_code = status, code
                job.error_detail = detail[:500] if detail else None
                job.finished_at = utcnow()
