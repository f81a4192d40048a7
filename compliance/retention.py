"""Retention: per-tenant periods for chat messages, cache entries, usage detail and uploaded
originals, enforced by a sweeper that records what it removed (counts only, in the audit log).

The sweeper runs in the API process every ``retention.sweep_interval_seconds`` (and on demand:
``bulwark retention sweep``); each tenant is swept in its own region's transaction. Originals
are removed once per document (the sweep remembers up to when it has looked), so the counts are
exact and a second sweep removes nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from compliance.repositories import RetentionRepository
from compliance.schemas import RetentionPolicy, RetentionSweep
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.tenancy import SystemAuthority, TenantContext, TenantRoute
from residency.database import Database
from residency.objects import TenantObjects
from residency.registry import RegionRegistry
from retrieval.cache.invalidation import drop_entries
from retrieval.index import KnowledgeIndex
from tenants.repositories import TenantRepository

log = structlog.get_logger("bulwark.retention")


class RetentionService:
    def __init__(self, session: AsyncSession, ctx: TenantContext, audit: AuditLog) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit
        self.policies = RetentionRepository(session, ctx)

    async def current(self) -> RetentionPolicy:
        row = await self.policies.get()
        return msgspec.convert(row.policy, RetentionPolicy) if row else RetentionPolicy()

    async def replace(self, policy: RetentionPolicy) -> RetentionPolicy:
        body = msgspec.to_builtins(policy)
        await self.policies.put(body)
        await self.audit.record(
            AuditAction.RETENTION_UPDATED,
            resource_type=ResourceType.RETENTION_POLICY,
            resource_id=None,
            detail={k: v for k, v in body.items() if v is not None},
        )
        return policy

    async def sweep(
        self,
        knowledge: KnowledgeIndex,
        objects: Callable[[AsyncSession, TenantContext], TenantObjects],
    ) -> RetentionSweep:
        row = await self.policies.get()
        policy = msgspec.convert(row.policy, RetentionPolicy) if row else RetentionPolicy()
        now = utcnow()
        sessions = messages = entries = usage = originals = 0
        if policy.chat_messages_days is not None:
            cutoff = now - timedelta(days=policy.chat_messages_days)
            sessions, messages = await self.policies.delete_chat_before(cutoff)
        if policy.cache_entries_days is not None:
            cutoff = now - timedelta(days=policy.cache_entries_days)
            old = await self.policies.cache_before(cutoff)
            questions = await knowledge.questions(self.ctx)
            entries = await drop_entries(self.session, self.ctx, questions, old)
        if policy.usage_detail_days is not None:
            cutoff = now - timedelta(days=policy.usage_detail_days)
            usage = await self.policies.delete_usage_before(cutoff)
        if policy.uploaded_originals_days is not None and row is not None:
            cutoff = now - timedelta(days=policy.uploaded_originals_days)
            store = objects(self.session, self.ctx)
            after = row.originals_swept_to
            for document in await self.policies.documents_updated_between(after, cutoff):
                for version in range(1, document.version + 1):
                    await store.delete("document", f"{document.id.hex}-v{version}")
                originals += 1
            row.originals_swept_to = cutoff
        if row is not None:
            row.last_swept_at = now
        result = RetentionSweep(sessions, messages, entries, usage, originals)
        if any(msgspec.to_builtins(result).values()):
            await self.audit.record(
                AuditAction.RETENTION_SWEPT,
                resource_type=ResourceType.RETENTION_POLICY,
                resource_id=None,
                detail=msgspec.to_builtins(result),
            )
        return result


async def sweep_all(
    tenants: list[TenantContext],
    registry: RegionRegistry,
    knowledge: KnowledgeIndex,
    objects: Callable[[AsyncSession, TenantContext], TenantObjects],
) -> dict[uuid.UUID, RetentionSweep]:
    """Sweep every tenant, each in its own transaction; a failing tenant does not stop the rest."""
    swept: dict[uuid.UUID, RetentionSweep] = {}
    for ctx in tenants:
        try:
            async with registry.tenant_transaction(ctx) as session:
                service = RetentionService(session, ctx, AuditLog(session, ctx))
                swept[ctx.tenant_id] = await service.sweep(knowledge, objects)
        except Exception as exc:  # one tenant's outage must not stop the others
            log.warning(
                "retention_sweep_failed", tenant_id=str(ctx.tenant_id), error=type(exc).__name__
            )
    return swept


async def sweep_active_tenants(
    control: Database,
    registry: RegionRegistry,
    knowledge: KnowledgeIndex,
    objects: Callable[[AsyncSession, TenantContext], TenantObjects],
    system: SystemAuthority,
) -> dict[uuid.UUID, RetentionSweep]:
    async with control.transaction(None, read_only=True) as session:
        tenants = [
            system.context(TenantRoute.of(t)) for t in await TenantRepository(session).active()
        ]
    return await sweep_all(tenants, registry, knowledge, objects)
