"""The batch track: non-interactive model work (ingest-time enrichment, eval runs), queued.

A batch is submitted in the request's unit of work (its items sealed with the tenant's keys)
and run by the project's job runner (taskiq; in process by default). Each item is one gateway
call on the ``batch`` track: billed at the batch price table, under the same quotas, and exempt
from the interactive request-rate limits. Each item's result is stored (sealed) in its own
transaction as soon as it is done, so a retried job skips the items already settled and no item
is ever charged twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from gateway.adapters.base import ModelMessage
from gateway.errors import BatchNotFound, UnknownModel
from gateway.models import Batch, BatchItem
from gateway.repositories import BatchRepository
from gateway.schemas import BatchCreate, BatchItemRead, BatchRead
from gateway.services import Caller, GatewayRequest, GatewayService
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.errors import AppError, InvalidInput
from kernel.jobs.models import Job
from kernel.jobs.repositories import JobRepository
from kernel.jobs.runner import JobRunner
from kernel.tenancy import TenantContext
from keys.services import Keyring, TenantKeys
from residency.database import after_commit
from residency.registry import RegionRegistry

log = structlog.get_logger("bulwark.gateway.batch")
BATCH_JOB = "gateway.batch"
_SEAL_KIND = "gateway_batch_item"
_RESULT_KIND = "gateway_batch_result"


class BatchService:
    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        keys: TenantKeys,
        jobs: JobRunner,
        audit: AuditLog,
        *,
        max_items: int,
        models: Collection[str],
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.batches = BatchRepository(session, ctx)
        self.keys = keys
        self.jobs = jobs
        self.audit = audit
        self.max_items = max_items
        self.models = models

    async def submit(self, body: BatchCreate) -> Batch:
        if len(body.requests) > self.max_items:
            raise InvalidInput(f"A batch holds at most {self.max_items} requests.")
        # A model this deployment has nowhere is refused now; one the tenant's region or BYO
        # models lack fails its item when it runs, as the interactive call would.
        for request in body.requests:
            if request.model not in self.models:
                raise UnknownModel(request.model)
        job = await JobRepository(self.session, self.ctx).add(
            Job(id=uuid.uuid4(), kind=BATCH_JOB, document_id=None, document_version=0)
        )
        batch = Batch(
            id=uuid.uuid4(),
            job_id=job.id,
            user_id=self.ctx.user_id,
            credential_id=self.ctx.credential_id,
            status="queued",
            item_count=len(body.requests),
        )
        items = []
        for position, request in enumerate(body.requests):
            item_id = uuid.uuid4()
            payload = json.dumps(
                {
                    "messages": [[m.role, m.content] for m in request.messages],
                    "model": request.model,
                    "max_tokens": request.max_tokens,
                    "temperature": request.temperature,
                }
            ).encode()
            items.append(
                BatchItem(
                    id=item_id,
                    position=position,
                    status="queued",
                    sealed_request=await self.keys.seal(_SEAL_KIND, str(item_id), payload),
                )
            )
        await self.batches.add(batch, items)
        await self.audit.record(
            AuditAction.MODEL_BATCH_SUBMITTED,
            resource_type=ResourceType.MODEL_BATCH,
            resource_id=batch.id,
            detail={"items": len(items)},
        )
        tenant_id, job_id = self.ctx.tenant_id, job.id
        after_commit(self.session, lambda: self.jobs.enqueue(tenant_id, job_id))
        return batch

    async def read(self, batch_id: uuid.UUID) -> BatchRead:
        batch = await self.batches.get(batch_id)
        if batch is None:
            raise BatchNotFound()
        items = []
        for item in await self.batches.items(batch.id):
            result = (
                json.loads(await self.keys.open(_RESULT_KIND, str(item.id), item.sealed_result))
                if item.sealed_result is not None
                else {}
            )
            items.append(
                BatchItemRead(
                    position=item.position,
                    status=item.status,
                    content=result.get("content"),
                    error_code=item.error_code,
                    tier=result.get("tier"),
                    cost_usd=result.get("cost_usd"),
                )
            )
        return BatchRead(id=batch.id, status=batch.status, item_count=batch.item_count, items=items)


class BatchRunner:
    """The job handler: runs a batch's pending items through the gateway, one by one."""

    def __init__(self, registry: RegionRegistry, keyring: Keyring, gateway: GatewayService) -> None:
        self.registry = registry
        self.keyring = keyring
        self.gateway = gateway

    async def __call__(self, ctx: TenantContext, job: Job) -> None:
        async with self.registry.tenant_transaction(ctx, read_only=True) as session:
            batch = await BatchRepository(session, ctx).by_job(job.id)
            if batch is None:
                return
            pending = [
                (item.id, item.sealed_request)
                for item in await BatchRepository(session, ctx).items(batch.id)
                if item.status == "queued"
            ]
            keys = self.keyring.for_tenant(session, ctx)
            requests = [
                (item_id, json.loads(await keys.open(_SEAL_KIND, str(item_id), sealed)))
                for item_id, sealed in pending
            ]
        caller = Caller(batch.user_id, batch.credential_id, track="batch", route="batch")
        for item_id, raw in requests:
            request = GatewayRequest(
                messages=tuple(ModelMessage(role, content) for role, content in raw["messages"]),
                model=raw["model"],
                max_tokens=raw["max_tokens"],
                temperature=raw["temperature"],
            )
            status, error, result = "succeeded", None, None
            try:
                done = await self.gateway.complete(ctx, request, caller)
                result = {
                    "content": done.text,
                    "tier": done.decision.tier,
                    "cost_usd": done.cost_microdollars / 1_000_000,
                }
            except AppError as exc:
                status, error = "failed", exc.code
            await self._store(ctx, item_id, status, error, result)
        async with self.registry.tenant_transaction(ctx) as session:
            stored = await BatchRepository(session, ctx).get(batch.id)
            if stored is not None:
                stored.status = "finished"
                stored.finished_at = utcnow()

    async def _store(
        self,
        ctx: TenantContext,
        item_id: uuid.UUID,
        status: str,
        error: str | None,
        result: dict[str, object] | None,
    ) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            item = await BatchRepository(session, ctx).item(item_id)
            if item is None:
                return
            item.status, item.error_code = status, error
            if result is not None:
                item.sealed_result = await self.keyring.for_tenant(session, ctx).seal(
                    _RESULT_KIND, str(item_id), json.dumps(result).encode()
                )

    async def failed(self, ctx: TenantContext, job: Job) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            batch = await BatchRepository(session, ctx).by_job(job.id)
            if batch is not None:
                batch.status = "failed"
                batch.finished_at = utcnow()
