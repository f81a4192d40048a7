"""Tenant-admin services of the gateway: quotas and rate limits, model policy, BYO models, and
usage reports. They run in the request's unit of work and never commit."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from gateway.errors import ByoModelNotFound
from gateway.fleet import TIERS
from gateway.models import ByoModel
from gateway.repositories import ByoModelRepository, PolicyRepository, UsageRepository
from gateway.schemas import (
    ByoModelRead,
    ByoModelWrite,
    ModelPolicyBody,
    QuotaLimit,
    QuotaPeriods,
    Quotas,
    RequestRates,
    UsageItem,
    UsageReport,
)
from gateway.services import GatewayService
from kernel.audit_events import AuditAction, ResourceType
from kernel.egress import EgressRefused
from kernel.errors import InvalidInput
from kernel.tenancy import TenantContext
from keys.services import TenantKeys

MICRO = 1_000_000


def _limit_in(limit: QuotaLimit | None) -> dict[str, int] | None:
    if limit is None:
        return None
    stored: dict[str, int] = {}
    if limit.tokens is not None:
        stored["tokens"] = limit.tokens
    if limit.usd is not None:
        stored["microdollars"] = round(limit.usd * MICRO)
    return stored


def _limit_out(stored: Any) -> QuotaLimit | None:
    if not isinstance(stored, dict):
        return None
    micro = stored.get("microdollars")
    return QuotaLimit(tokens=stored.get("tokens"), usd=micro / MICRO if micro is not None else None)


def _periods_in(periods: QuotaPeriods) -> dict[str, Any]:
    return {
        name: value
        for name, value in (("day", _limit_in(periods.day)), ("month", _limit_in(periods.month)))
        if value
    }


def _periods_out(stored: Any) -> QuotaPeriods:
    stored = stored if isinstance(stored, dict) else {}
    return QuotaPeriods(day=_limit_out(stored.get("day")), month=_limit_out(stored.get("month")))


def byo_read(model: ByoModel) -> ByoModelRead:
    return ByoModelRead(
        tier=model.tier,
        provider=model.provider,
        base_url=model.base_url,
        model=model.model,
        has_api_key=model.sealed_api_key is not None,
        input_price_per_mtok=model.input_price_per_mtok,
        output_price_per_mtok=model.output_price_per_mtok,
        context_window=model.context_window,
        max_concurrency=model.max_concurrency,
        timeout_seconds=model.timeout_seconds,
        version=model.version,
    )


def check_model_policy(body: ModelPolicyBody) -> None:
    """A policy allows at least one tier, and pins and falls back to allowed ones (422). The
    OpenAPI document states the same rules (``ModelPolicyBody.json_schema_extra``)."""
    allowed = set(body.allowed or TIERS) - set(body.forbidden or [])
    if not allowed:
        raise InvalidInput("The policy must allow at least one tier.")
    if body.pinned is not None and body.pinned not in allowed:
        raise InvalidInput("The pinned tier must be allowed.")
    if body.fallback is not None and body.fallback not in allowed:
        raise InvalidInput("The fallback tier must be allowed.")


class GatewayAdminService:
    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        gateway: GatewayService,
        keys: TenantKeys,
        audit: AuditLog,
    ) -> None:
        self.ctx = ctx
        self.policies = PolicyRepository(session, ctx)
        self.byo = ByoModelRepository(session, ctx)
        self.gateway = gateway
        self.keys = keys
        self.audit = audit

    def _audit_refusal(self, tier: str, refused: EgressRefused) -> None:
        """The refusal, audited once the refused request has ended (it rolls back)."""
        self.audit.record_refusal(
            self.gateway.registry,
            AuditAction.EGRESS_REFUSED,
            resource_type=ResourceType.MODEL_ENDPOINT,
            resource_id=None,
            detail={"tier": tier, **refused.audit_detail()},
        )

    async def quotas(self) -> Quotas:
        row = await self.policies.get()
        stored = row.quotas if row else {}
        return Quotas(
            tenant=_periods_out(stored.get("tenant")),
            per_user=_periods_out(stored.get("user")),
            requests=RequestRates(
                identity_per_minute=row.identity_rpm if row else None,
                tenant_per_minute=row.tenant_rpm if row else None,
            ),
        )

    async def set_quotas(self, quotas: Quotas) -> Quotas:
        row = await self.policies.get_or_create()
        row.quotas = {"tenant": _periods_in(quotas.tenant), "user": _periods_in(quotas.per_user)}
        row.identity_rpm = quotas.requests.identity_per_minute
        row.tenant_rpm = quotas.requests.tenant_per_minute
        await self.audit.record(
            AuditAction.QUOTAS_UPDATED, resource_type=ResourceType.QUOTA, resource_id=row.id
        )
        self.gateway.invalidate(self.ctx.tenant_id)
        return await self.quotas()

    async def model_policy(self) -> ModelPolicyBody:
        row = await self.policies.get()
        raw = row.model_policy if row else {}
        return ModelPolicyBody(
            pinned=raw.get("pinned"),
            allowed=raw.get("allowed"),
            forbidden=raw.get("forbidden"),
            fallback=raw.get("fallback"),
        )

    async def set_model_policy(self, body: ModelPolicyBody) -> ModelPolicyBody:
        check_model_policy(body)
        row = await self.policies.get_or_create()
        row.model_policy = {
            "pinned": body.pinned,
            "allowed": sorted(body.allowed, key=TIERS.index) if body.allowed else None,
            "forbidden": sorted(body.forbidden, key=TIERS.index) if body.forbidden else None,
            "fallback": body.fallback,
        }
        await self.audit.record(
            AuditAction.MODEL_POLICY_UPDATED,
            resource_type=ResourceType.MODEL_POLICY,
            resource_id=row.id,
            detail={"pinned": body.pinned, "fallback": body.fallback},
        )
        self.gateway.invalidate(self.ctx.tenant_id)
        return await self.model_policy()

    async def byo_models(self) -> list[ByoModelRead]:
        return [byo_read(model) for model in await self.byo.all()]

    async def put_byo_model(self, tier: str, body: ByoModelWrite) -> ByoModelRead:
        if tier not in TIERS:
            raise InvalidInput("tier must be small, mid or frontier", tier=tier[:16])
        try:
            await self.gateway.egress.for_tenant(self.ctx.tenant_slug).check_destination(
                body.base_url
            )
        except EgressRefused as exc:
            self._audit_refusal(tier, exc)
            raise
        model = await self.byo.get(tier)
        if model is None:
            model = await self.byo.add(
                ByoModel(
                    id=uuid.uuid4(),
                    tier=tier,
                    provider=body.provider,
                    base_url=body.base_url,
                    model=body.model,
                    input_price_per_mtok=body.input_price_per_mtok,
                    output_price_per_mtok=body.output_price_per_mtok,
                    context_window=body.context_window,
                    max_concurrency=body.max_concurrency,
                    timeout_seconds=body.timeout_seconds,
                    version=1,
                )
            )
        else:
            model.provider, model.base_url, model.model = body.provider, body.base_url, body.model
            model.input_price_per_mtok = body.input_price_per_mtok
            model.output_price_per_mtok = body.output_price_per_mtok
            model.context_window = body.context_window
            model.max_concurrency = body.max_concurrency
            model.timeout_seconds = body.timeout_seconds
            model.version += 1
        # The secret is sealed with the tenant's own keys, bound to this row's id.
        model.sealed_api_key = (
            await self.keys.seal("byo_model", str(model.id), body.api_key.encode())
            if body.api_key
            else None
        )
        await self.audit.record(
            AuditAction.BYO_MODEL_CONFIGURED,
            resource_type=ResourceType.MODEL_ENDPOINT,
            resource_id=model.id,
            detail={"tier": tier, "provider": body.provider, "version": model.version},
        )
        self.gateway.invalidate(self.ctx.tenant_id)
        return byo_read(model)

    async def remove_byo_model(self, tier: str) -> None:
        model = await self.byo.get(tier)
        if model is None:
            raise ByoModelNotFound(tier[:16])
        await self.byo.remove(tier)
        await self.audit.record(
            AuditAction.BYO_MODEL_REMOVED,
            resource_type=ResourceType.MODEL_ENDPOINT,
            resource_id=model.id,
            detail={"tier": tier},
        )
        self.gateway.invalidate(self.ctx.tenant_id)


class UsageService:
    """Usage reports from the ledger. Tenant admins see everyone; other users only themselves."""

    def __init__(self, session: AsyncSession, ctx: TenantContext, *, everyone: bool) -> None:
        self.usage = UsageRepository(session, ctx)
        self.ctx = ctx
        self.everyone = everyone

    async def report(self, group_by: str, since: str | None, until: str | None) -> UsageReport:
        """The ledger from ``since`` to ``until``, both included (default: this month so far).
        Any span is answered, as the OpenAPI document promises: one ending before it starts
        holds nothing."""
        today = datetime.now(UTC).date()
        try:
            start = date.fromisoformat(since) if since else today.replace(day=1)
            end = date.fromisoformat(until) if until else today
        except ValueError:
            raise InvalidInput("since and until are dates: YYYY-MM-DD") from None
        user = None if self.everyone else self.ctx.user_id
        groups = await self.usage.grouped(
            group_by, since_day=start.isoformat(), until_day=end.isoformat(), user_id=user
        )
        items = [
            UsageItem(
                key=g.key,
                calls=g.calls,
                input_tokens=g.input_tokens,
                output_tokens=g.output_tokens,
                cost_usd=g.cost_microdollars / MICRO,
            )
            for g in groups
        ]
        return UsageReport(
            group_by=group_by,
            since=start.isoformat(),
            until=end.isoformat(),
            items=items,
            total_cost_usd=sum(g.cost_microdollars for g in groups) / MICRO,
            total_tokens=sum(g.input_tokens + g.output_tokens for g in groups),
        )
