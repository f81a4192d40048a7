"""The raw-content debug switch.

Logs carry prompts and answers as keyed hashes only. When a tenant admin must see what went in
and out (a support case, a prompt-injection investigation), they turn raw-content logging on for
their own tenant for at most an hour, with a reason; turning it on and off is audited, and it
switches itself off when the time is up. The operator must also allow it for the deployment
(``observability.allow_raw_content_debug``, off by default): the logs are the operator's.
Raw lines go to their own logger, ``bulwark.debug.raw``, so a log pipeline can route or drop
them, and each carries ``raw_content: true``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from chat.debug.errors import RawContentDebugNotAllowed
from chat.debug.models import DebugSwitchRow
from chat.debug.schemas import RawContentSwitchBody, RawContentSwitchOut
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.repositories import TenantPolicyRows
from kernel.tenancy import TenantContext

raw_log = structlog.get_logger("bulwark.debug.raw")


class DebugSwitchRepository(TenantPolicyRows[DebugSwitchRow]):
    model = DebugSwitchRow


async def raw_content_until(session: AsyncSession, ctx: TenantContext) -> datetime | None:
    """When the tenant's raw-content logging ends, if it is on now; ``None`` when off."""
    row = await DebugSwitchRepository(session, ctx).get()
    until = row.policy.get("raw_content_until") if row is not None else None
    if until is None:
        return None
    ends = datetime.fromisoformat(until)
    return ends if ends > utcnow() else None


class DebugSwitchService:
    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        audit: AuditLog,
        *,
        allowed: bool,
        pepper: bytes,
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit
        self.allowed = allowed
        self.pepper = pepper

    async def current(self) -> RawContentSwitchOut:
        until = await raw_content_until(self.session, self.ctx) if self.allowed else None
        return RawContentSwitchOut(
            enabled=until is not None, until=until, allowed_by_operator=self.allowed
        )

    async def enable(self, body: RawContentSwitchBody) -> RawContentSwitchOut:
        if not self.allowed:
            raise RawContentDebugNotAllowed()
        until = utcnow() + timedelta(minutes=body.minutes)
        await DebugSwitchRepository(self.session, self.ctx).put(
            {"raw_content_until": until.isoformat()}
        )
        await self.audit.record(
            AuditAction.DEBUG_RAW_CONTENT_ENABLED,
            resource_type=ResourceType.DEBUG_SWITCH,
            resource_id=None,
            detail={
                "minutes": body.minutes,
                "until": until.isoformat(),
                "reason_hash": hmac.new(
                    self.pepper, body.reason.encode(), hashlib.sha256
                ).hexdigest()[:32],
            },
        )
        return RawContentSwitchOut(enabled=True, until=until, allowed_by_operator=True)

    async def disable(self) -> RawContentSwitchOut:
        repository = DebugSwitchRepository(self.session, self.ctx)
        row = await repository.get()
        if row is not None and row.policy.get("raw_content_until") is not None:
            await repository.put({"raw_content_until": None})
            await self.audit.record(
                AuditAction.DEBUG_RAW_CONTENT_DISABLED,
                resource_type=ResourceType.DEBUG_SWITCH,
                resource_id=None,
                detail={},
            )
        return RawContentSwitchOut(enabled=False, until=None, allowed_by_operator=self.allowed)
