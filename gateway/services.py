"""The gateway service: the one way application code calls a model.

One call: resolve the tenant's policy and fleet (its own region's endpoints, or its BYO model)
→ trim to the token budget → route to a tier → admit (request-rate limits and a quota
reservation of the worst-case cost, atomically, in the regional database) → call with retries,
circuit breakers and fallback → settle (release the reservation, add the actual usage, write
one ledger row and one audit event holding only a hash of the prompt).

Admission and settlement are two short transactions of their own: no database transaction is
held open while a model generates. A call is settled exactly once (the ledger's unique call id
makes a second settlement fail), whatever happened: a failed call settles zero and releases its
reservation; a stream that fails after its first token settles what was generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

import structlog
from opentelemetry import trace
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from audit import pseudonyms
from audit.schemas import AuditAction, AuditOutcome, ResourceType
from audit.services import AuditLog, PendingEvent, subject_of
from gateway import metrics
from gateway.adapters.base import (
    EGRESS_REFUSED_PREFIX,
    Completion,
    Delta,
    ModelMessage,
    ProviderError,
    ProviderRequest,
    TokenUsage,
)
from gateway.errors import (
    InputTooLong,
    ModelProviderRejected,
    ModelUnavailable,
    QuotaExhausted,
    RateLimited,
    UnknownModel,
)
from gateway.fleet import TIERS, Endpoint, Fleet, byo_endpoint_name
from gateway.ledger import SettlementQueue
from gateway.repositories import (
    ByoModelRepository,
    CounterCharge,
    CounterDelta,
    CounterRepository,
    PolicyRepository,
    RateWindowRepository,
    ReservationRepository,
    UsageRepository,
    charges_of,
)
from gateway.router import ModelPolicy, RouteDecision, RouteInput, Router
from kernel.egress import EgressPolicy
from kernel.epochs import EpochCache
from kernel.settings import GatewaySettings, ModelEndpointSettings
from kernel.tenancy import TenantContext
from keys.services import Keyring
from residency.database import after_commit
from residency.errors import RegionUnavailable
from residency.registry import RegionRegistry

log = structlog.get_logger("bulwark.gateway")
T = TypeVar("T")

# A conservative token estimate (English runs ~4 characters a token): reservations should not
# undershoot what a provider later reports.
_CHARS_PER_TOKEN = 3
_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    return len(text) // _CHARS_PER_TOKEN + 1


def estimate_messages(messages: Sequence[ModelMessage]) -> int:
    return sum(estimate_tokens(m.content) + _MESSAGE_OVERHEAD for m in messages)


def prompt_hash(messages: Sequence[ModelMessage]) -> str:
    canonical = json.dumps([[m.role, m.content] for m in messages], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def trim(messages: Sequence[ModelMessage], budget: int) -> tuple[list[ModelMessage], int]:
    """Drop the oldest conversation turns (never system messages, never the last message) until
    the estimate fits ``budget``; returns the kept messages and their estimate."""
    kept = list(messages)
    tokens = estimate_messages(kept)
    index = 0
    while tokens > budget and index < len(kept) - 1:
        if kept[index].role == "system":
            index += 1
            continue
        tokens -= estimate_tokens(kept[index].content) + _MESSAGE_OVERHEAD
        del kept[index]
    return kept, tokens


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    messages: tuple[ModelMessage, ...]
    model: str = "auto"  # auto | small | mid | frontier | a configured alias
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    sources: int = 0
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who pays: the user (per-user quotas), the credential (rate limits), the track."""

    user_id: uuid.UUID | None
    credential_id: uuid.UUID | None
    request_id: str | None = None
    track: str = "interactive"  # interactive | batch
    # What asked, for the cost and token metrics: "gateway" (the API), "chat", "batch"...
    route: str = "gateway"

    @classmethod
    def of(
        cls, ctx: TenantContext, request_id: str | None = None, route: str = "gateway"
    ) -> Caller:
        return cls(ctx.user_id, ctx.credential_id, request_id, route=route)


@dataclass(frozen=True, slots=True)
class TenantGatewayConfig:
    policy: ModelPolicy
    quotas: dict[str, Any]
    identity_rpm: int
    tenant_rpm: int
    byo: dict[str, tuple[str, ModelEndpointSettings]]  # tier -> (fleet key, spec)


@dataclass(slots=True)
class PreparedCall:
    call_id: uuid.UUID
    messages: list[ModelMessage]
    input_tokens: int
    max_output: int
    decision: RouteDecision
    candidates: list[Endpoint]
    reserved_tokens: int
    reserved_microdollars: int
    charges: list[CounterCharge] = field(default_factory=list)
    # Whether admission left a reservation row (a lease) that settlement must take.
    leased: bool = False
    # BYO endpoints the egress guard refused at call time: (endpoint, reason), audited with
    # the call's settlement.
    refused: list[tuple[str, str]] = field(default_factory=list)
    _prompt_hash: str | None = None

    @property
    def prompt_hash(self) -> str:
        """The prompt's SHA-256 (ledger and audit), computed when first asked for: by the
        settlement, off the request's path."""
        if self._prompt_hash is None:
            self._prompt_hash = prompt_hash(self.messages)
        return self._prompt_hash


@dataclass(frozen=True, slots=True)
class GatewayResult:
    call_id: uuid.UUID
    text: str
    finish_reason: str | None
    usage: TokenUsage
    cost_microdollars: int
    decision: RouteDecision
    endpoint: str
    model: str
    fallbacks: int
    # With ``settle="caller"``: the settlement the caller records (``settle_in``).
    pending: Settlement | None = None


@dataclass(slots=True)
class Settlement:
    """A finished call's usage, not yet in the ledger (``GatewayService.settle_in``)."""

    ctx: TenantContext
    caller: Caller
    prepared: PreparedCall
    endpoint: Endpoint | None
    usage: TokenUsage
    outcome: str
    metered: bool = False

    @property
    def cost(self) -> int:
        return GatewayService.cost(self.caller, self.endpoint, self.usage)


def _subject(caller: Caller, ctx: TenantContext) -> str:
    return pseudonyms.user_subject(caller.user_id) if caller.user_id else subject_of(ctx)


def _audit_events(settlement: Settlement) -> list[PendingEvent]:
    """The call's event, and one ``egress.refused`` per endpoint the guard refused for it."""
    refusals = [
        PendingEvent(
            AuditAction.EGRESS_REFUSED,
            ResourceType.MODEL_ENDPOINT,
            None,
            {"tier": settlement.prepared.decision.tier, "endpoint": name, "reason": reason},
            AuditOutcome.DENIED,
            subject=_subject(settlement.caller, settlement.ctx),
            request_id=settlement.caller.request_id,
        )
        for name, reason in settlement.prepared.refused
    ]
    return [*refusals, _audit_event(settlement)]


def _audit_event(settlement: Settlement) -> PendingEvent:
    prepared, endpoint, usage = settlement.prepared, settlement.endpoint, settlement.usage
    return PendingEvent(
        AuditAction.MODEL_CALLED,
        ResourceType.MODEL_CALL,
        prepared.call_id,
        {
            "tier": prepared.decision.tier,
            "route_reason": prepared.decision.reason,
            "endpoint": endpoint.name if endpoint else None,
            "track": settlement.caller.track,
            "input_tokens": usage.input_tokens if endpoint else 0,
            "output_tokens": usage.output_tokens if endpoint else 0,
            "cost_microdollars": settlement.cost,
            "prompt_sha256": prepared.prompt_hash,
        },
        AuditOutcome.SUCCESS if settlement.outcome != "failed" else AuditOutcome.FAILURE,
        subject=_subject(settlement.caller, settlement.ctx),
        request_id=settlement.caller.request_id,
    )


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str  # delta | done | error
    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    cost_microdollars: int = 0
    error_code: str | None = None


@dataclass(slots=True)
class GatewayStream:
    call_id: uuid.UUID
    decision: RouteDecision
    endpoint: str
    model: str
    fallbacks: int
    events: AsyncIterator[StreamEvent]


# How often an admission in a tenant looks for reservations whose lease ran out (per process);
# an admission about to be refused always looks.
EXPIRY_CHECK_SECONDS = 1.0


def _periods(now: datetime) -> list[tuple[str, str, int]]:
    """(period name, counter key, seconds until it resets) for the current UTC day and month."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    next_month = datetime(year, month, 1, tzinfo=UTC)
    return [
        ("day", f"d{now:%Y-%m-%d}", int((tomorrow - now).total_seconds()) + 1),
        ("month", f"m{now:%Y-%m}", int((next_month - now).total_seconds()) + 1),
    ]


@functools.lru_cache(maxsize=4)
def _period_keys(day: date) -> tuple[tuple[str, str], ...]:
    """(period name, counter key) of the day's and the month's counters."""
    return (("day", f"d{day:%Y-%m-%d}"), ("month", f"m{day:%Y-%m}"))


def _limit(quotas: dict[str, Any], scope: str, period: str, kind: str) -> int | None:
    value = ((quotas.get(scope) or {}).get(period) or {}).get(kind)
    return int(value) if value is not None else None


def _span(decision: RouteDecision, endpoint: str | None = None) -> None:
    span = trace.get_current_span()
    if not span.is_recording():  # e.g. a judge call after its request's span ended
        return
    span.set_attribute("bulwark.gateway.tier", decision.tier)
    span.set_attribute("bulwark.gateway.route_reason", decision.reason)
    if endpoint:
        span.set_attribute("bulwark.gateway.endpoint", endpoint)


class GatewayService:
    """Model calls for a tenant: ``complete`` and ``stream`` (see the module docstring)."""

    def __init__(
        self,
        registry: RegionRegistry,
        keyring: Keyring,
        fleet: Fleet,
        router: Router,
        settings: GatewaySettings,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        egress: EgressPolicy | None = None,
    ) -> None:
        self.registry = registry
        self.keyring = keyring
        self.fleet = fleet
        self.router = router
        self.settings = settings
        self.now = now
        # Where a tenant's BYO model URL may lead (``kernel.egress``): public https only, unless
        # the operator allow-lists more.
        self.egress = egress or EgressPolicy()
        # Tenant configurations: under the tenant's epoch (``kernel.epochs``) for contexts that
        # carry one, else for ``config_cache_seconds``.
        self._epoch_configs: EpochCache[TenantGatewayConfig] = EpochCache()
        self._configs: dict[uuid.UUID, tuple[float, TenantGatewayConfig]] = {}
        # Admissions this process took from rate windows and has not used yet (``_admit_rates``)
        self._allowances: dict[tuple[uuid.UUID, str, int], int] = {}
        self._allowance_window = 0
        # The last block taken for each of those, and the refills under way (``_refill``).
        self._blocks: dict[tuple[uuid.UUID, str, int], int] = {}
        self._refills: dict[tuple[uuid.UUID, str, int], asyncio.Task[int]] = {}
        self._full: set[tuple[uuid.UUID, str, int]] = set()  # windows a refill found full
        self._expiry_checked: dict[uuid.UUID, float] = {}  # tenant: when (``_expiry_check_due``)
        self._settling: set[asyncio.Future[int]] = set()
        self._ledger = SettlementQueue(
            self._write_settlements,
            delay=settings.settle_batch_seconds,
            max_batch=settings.settle_batch_max,
        )

    # -- tenant configuration -------------------------------------------------------------

    def invalidate(self, tenant_id: uuid.UUID) -> None:
        self._configs.pop(tenant_id, None)
        self._epoch_configs.forget(tenant_id)

    async def tenant_config(self, ctx: TenantContext) -> TenantGatewayConfig:
        held = self._epoch_configs.get(ctx)
        if held is not None:
            return held
        cached = self._configs.get(ctx.tenant_id)
        if (
            ctx.epoch is None
            and cached is not None
            and time.monotonic() - cached[0] < self.settings.config_cache_seconds
        ):
            return cached[1]
        async with self.registry.tenant_transaction(ctx, read_only=True) as session:
            row = await PolicyRepository(session, ctx).get()
            byo: dict[str, tuple[str, ModelEndpointSettings]] = {}
            rows = await ByoModelRepository(session, ctx).all()
            keys = self.keyring.for_tenant(session, ctx) if rows else None
            for model in rows:
                secret = None
                if model.sealed_api_key is not None and keys is not None:
                    secret = (
                        await keys.open("byo_model", str(model.id), model.sealed_api_key)
                    ).decode()
                spec = ModelEndpointSettings(
                    name=byo_endpoint_name(model.tier),
                    tier=model.tier,  # type: ignore[arg-type]
                    provider=model.provider,  # type: ignore[arg-type]
                    base_url=model.base_url,
                    model=model.model,
                    api_key=SecretStr(secret) if secret else None,
                    input_price_per_mtok=model.input_price_per_mtok,
                    output_price_per_mtok=model.output_price_per_mtok,
                    context_window=model.context_window,
                    max_concurrency=model.max_concurrency,
                    read_timeout_seconds=model.timeout_seconds,
                    total_timeout_seconds=model.timeout_seconds * 4,
                )
                byo[model.tier] = (f"byo/{ctx.tenant_id}/{model.tier}/{model.version}", spec)
        config = TenantGatewayConfig(
            policy=ModelPolicy.of(row.model_policy if row else None),
            quotas=dict(row.quotas) if row else {},
            identity_rpm=(row.identity_rpm if row and row.identity_rpm else None)
            or self.settings.identity_requests_per_minute,
            tenant_rpm=(row.tenant_rpm if row and row.tenant_rpm else None)
            or self.settings.tenant_requests_per_minute,
            byo=byo,
        )
        if ctx.epoch is not None:
            self._epoch_configs.put(ctx, config)
        else:
            self._configs[ctx.tenant_id] = (time.monotonic(), config)
        return config

    def tiers(self, ctx: TenantContext, config: TenantGatewayConfig) -> dict[str, list[Endpoint]]:
        """The tenant's endpoints per tier: its BYO model replaces a tier; the rest are its own
        region's (``model_endpoints_for`` never answers with another region's endpoints)."""
        tiers: dict[str, list[Endpoint]] = {}
        for tier in TIERS:
            if tier in config.byo:
                key, spec = config.byo[tier]
                tiers[tier] = [
                    self.fleet.endpoint(
                        key, spec, byo=True, egress=self.egress.for_tenant(ctx.tenant_slug)
                    )
                ]
                continue
            try:
                specs = self.registry.model_endpoints_for(ctx, tier)
            except RegionUnavailable:
                continue
            tiers[tier] = [self.fleet.endpoint(f"{ctx.region}/{s.name}", s) for s in specs]
        return tiers

    async def prompt_room(self, ctx: TenantContext, model: str, answer_tokens: int) -> int:
        """Tokens of prompt (in this gateway's estimate) that every endpoint ``model`` may be
        routed to can take, leaving ``answer_tokens`` for the answer: the smallest window of
        the requested endpoint, tier, or (``auto``) of every tier the tenant may use, since the
        router picks the tier after the prompt is built. Never more than ``max_input_tokens``."""
        config = await self.tenant_config(ctx)
        tiers = self.tiers(ctx, config)
        requested, preferred = self._resolve_model(model, tiers)
        if preferred is not None:
            endpoints = [preferred]
        elif requested is not None or config.policy.pinned is not None:
            endpoints = tiers.get(requested or config.policy.pinned or "", [])
        else:
            allowed = config.policy.allowed
            endpoints = [e for tier, found in tiers.items() if tier in allowed for e in found]
        answer = min(answer_tokens, self.settings.max_output_tokens)
        windows = [e.spec.context_window for e in endpoints]
        room = (min(windows) if windows else self.settings.max_input_tokens + answer) - answer
        return max(0, min(room, self.settings.max_input_tokens))

    async def configured_generation(self, ctx: TenantContext) -> bool:
        """Whether the tenant may reach a model configured to write answers: its own BYO model
        or an operator's endpoint. The embedded llama.cpp model alone does not count: on
        ``bench/answers.py`` its answers scored below extractive ones (see README)."""
        config = await self.tenant_config(ctx)
        return any(
            endpoint.spec.provider != "llamacpp-local"
            for tier, endpoints in self.tiers(ctx, config).items()
            if tier in config.policy.allowed
            for endpoint in endpoints
        )

    # -- preparation and admission --------------------------------------------------------

    async def prepare(
        self, ctx: TenantContext, request: GatewayRequest, caller: Caller
    ) -> tuple[PreparedCall, TenantGatewayConfig]:
        config = await self.tenant_config(ctx)
        tiers = self.tiers(ctx, config)
        requested, preferred = self._resolve_model(request.model, tiers)
        max_output = min(
            request.max_tokens or self.settings.max_output_tokens, self.settings.max_output_tokens
        )
        messages, input_tokens = trim(request.messages, self.settings.max_input_tokens)
        if input_tokens > self.settings.max_input_tokens:
            raise InputTooLong(input_tokens, self.settings.max_input_tokens)
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        decision = await self.router.route(
            RouteInput(question, input_tokens, request.sources, request.reasoning),
            requested=requested,
            policy=config.policy,
            available=[t for t, endpoints in tiers.items() if endpoints],
            region=ctx.region,
            small=tiers.get("small", []),
        )
        candidates = list(tiers.get(decision.tier, []))
        if preferred is not None and preferred in candidates:
            candidates.remove(preferred)
            candidates.insert(0, preferred)
        fallback = config.policy.fallback
        if (
            fallback
            and fallback != decision.tier
            and fallback in config.policy.allowed
            and config.policy.pinned is None
        ):
            candidates += tiers.get(fallback, [])
        if request.max_tokens is None and candidates:
            # No explicit max_tokens: the output may use what the largest window leaves.
            room = max(c.spec.context_window for c in candidates) - input_tokens
            max_output = max(1, min(max_output, room))
        fitting = [c for c in candidates if c.spec.context_window >= input_tokens + max_output]
        if not fitting:
            window = max(c.spec.context_window for c in candidates) if candidates else 0
            raise InputTooLong(input_tokens, max(0, window - max_output))
        reserved = max(c.prices(caller.track).cost(input_tokens, max_output) for c in fitting)
        prepared = PreparedCall(
            call_id=uuid.uuid4(),
            messages=messages,
            input_tokens=input_tokens,
            max_output=max_output,
            decision=decision,
            candidates=fitting,
            reserved_tokens=input_tokens + max_output,
            reserved_microdollars=reserved,
        )
        _span(decision)
        return prepared, config

    @staticmethod
    def _resolve_model(
        model: str, tiers: dict[str, list[Endpoint]]
    ) -> tuple[str | None, Endpoint | None]:
        if model == "auto":
            return None, None
        if model in TIERS:
            return model, None
        for tier, endpoints in tiers.items():
            for endpoint in endpoints:
                if model == endpoint.name or model in endpoint.aliases:
                    return tier, endpoint
        raise UnknownModel(model)

    async def admit(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        config: TenantGatewayConfig,
    ) -> None:
        """Count the request against the rate limits and reserve its worst-case cost against
        every quota, in one transaction: all or nothing. A request with no quota to enforce is
        admitted from the rate allowances this process holds (``_spend_held_or_refilled``) and
        opens no transaction of its own."""
        now = self.now()
        charges, enforced = self._charges(caller, prepared, config, now)
        window = int(now.timestamp() // 60)
        if not enforced and await self._spend_held_or_refilled(ctx, caller, config, window):
            prepared.charges = charges
            prepared.leased = False
            return
        # Expired leases are looked for at most once a second per tenant and process, and
        # always before a refusal: they matter once they stand between a call and its quota.
        release_expired = self._expiry_check_due(ctx.tenant_id)
        try:
            async with self.registry.tenant_transaction(ctx) as session:
                await self.admit_in(
                    session,
                    ctx,
                    caller,
                    prepared,
                    config,
                    savepoint=False,
                    release_expired=release_expired,
                )
        except QuotaExhausted:
            # This process's settlements are written in batches: those still queued hold
            # their calls' reservations. Written, and with expired leases released, they may
            # leave room: one more try.
            queued = self._ledger.holds(ctx.tenant_id)
            if not queued and release_expired:
                raise
            await self._ledger.flush(ctx.tenant_id)
            async with self.registry.tenant_transaction(ctx) as session:
                await self.admit_in(session, ctx, caller, prepared, config, savepoint=False)

    async def reserve(
        self, session: AsyncSession, ctx: TenantContext, request: GatewayRequest, caller: Caller
    ) -> PreparedCall:
        """Route ``request`` and admit it in the caller's writing transaction (the chat's
        first one: no transaction of its own); ``complete(admitted=...)`` then makes the call.
        If that transaction rolls back, so does the admission."""
        prepared, config = await self.prepare(ctx, request, caller)
        await self.admit_in(session, ctx, caller, prepared, config)
        return prepared

    async def admit_in(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        config: TenantGatewayConfig,
        *,
        savepoint: bool = True,
        release_expired: bool = True,
    ) -> None:
        """``admit`` in ``session``'s transaction. A refusal leaves nothing of the admission
        behind: a savepoint holds what it counted when quotas are enforced, unless the caller
        rolls its whole transaction back on a refusal (``savepoint=False``). Reservations whose
        lease ran out are released first unless ``release_expired`` is false."""
        now = self.now()
        epoch = now.timestamp()
        window = int(epoch // 60)
        retry_after = 60 - int(epoch % 60)
        charges, enforced = self._charges(caller, prepared, config, now)
        resets = {key: seconds for _, key, seconds in _periods(now)}
        # A refusal leaves its transaction to be rolled back, except a quota refusal inside a
        # chat's transaction (answered without a model, which goes on): what the admission had
        # counted before it (rate windows, earlier counters) sits in a savepoint.
        nested = session.begin_nested() if enforced and savepoint else contextlib.nullcontext()
        async with nested:
            granted = await self._admit_rates(session, ctx, caller, config, window, retry_after)
            counters = CounterRepository(session, ctx)
            reservations = ReservationRepository(session, ctx)
            if enforced and release_expired:
                await self._release_expired(reservations, counters, now)
            for charge in enforced:
                if not await counters.reserve(charge):
                    scope = "tenant" if charge.scope == "tenant" else "user"
                    period = "day" if charge.period.startswith("d") else "month"
                    raise QuotaExhausted(scope, period, resets[charge.period])
            held = [c for c in enforced if c.tokens or c.microdollars]
            if held:
                lease = timedelta(seconds=self.settings.reservation_lease_seconds)
                await reservations.add(prepared.call_id, held, now + lease)
        prepared.charges = charges
        prepared.leased = bool(held)
        if granted:
            after_commit(session, lambda: self._allow(ctx.tenant_id, window, granted))

    @staticmethod
    def _charges(
        caller: Caller, prepared: PreparedCall, config: TenantGatewayConfig, now: datetime
    ) -> tuple[list[CounterCharge], list[CounterCharge]]:
        """The counters a call charges (its tenant's and its user's, per day and month), and
        those of them with a limit to enforce, in the order they are locked."""
        charges: list[CounterCharge] = []
        scopes = ["tenant"] + ([f"user:{caller.user_id}"] if caller.user_id else [])
        for scope in scopes:
            quota_scope = "tenant" if scope == "tenant" else "user"
            for period, key in _period_keys(now.date()):
                max_tokens = _limit(config.quotas, quota_scope, period, "tokens")
                max_microdollars = _limit(config.quotas, quota_scope, period, "microdollars")
                limited = max_tokens is not None or max_microdollars is not None
                # A counter without a limit needs no reservation (nothing to enforce): the call
                # saves a write here and settlement still adds its actual usage.
                charges.append(
                    CounterCharge(
                        scope=scope,
                        period=key,
                        tokens=prepared.reserved_tokens if limited else 0,
                        microdollars=prepared.reserved_microdollars if limited else 0,
                        max_tokens=max_tokens,
                        max_microdollars=max_microdollars,
                    )
                )
        enforced = [
            charge
            for charge in sorted(charges, key=lambda c: (c.scope, c.period))
            if charge.max_tokens is not None or charge.max_microdollars is not None
        ]
        return charges, enforced

    def _rate_limits(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> tuple[list[tuple[str, int, str]], list[bool]]:
        """An interactive request's rate limits (subject, per minute, scope) and, for each,
        whether this process holds an admission for it in ``window``."""
        identity = (
            f"key:{caller.credential_id}"
            if caller.credential_id
            else f"user:{caller.user_id}"
            if caller.user_id
            else None
        )
        limits = ([(identity, config.identity_rpm, "identity")] if identity else []) + [
            ("tenant", config.tenant_rpm, "tenant")
        ]
        if window > self._allowance_window:  # a new minute: last minute's blocks are void
            self._allowances = {k: v for k, v in self._allowances.items() if k[2] >= window}
            self._blocks = {k: v for k, v in self._blocks.items() if k[2] >= window}
            self._full = {k for k in self._full if k[2] >= window}
            self._allowance_window = window
        held = [self._allowances.get((ctx.tenant_id, s, window), 0) > 0 for s, _, _ in limits]
        return limits, held

    def _expiry_check_due(self, tenant_id: uuid.UUID) -> bool:
        now = time.monotonic()
        if now - self._expiry_checked.get(tenant_id, -EXPIRY_CHECK_SECONDS) < EXPIRY_CHECK_SECONDS:
            return False
        self._expiry_checked[tenant_id] = now
        return True

    def _spend_held(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> bool:
        """Admit from what this process holds, if it holds every admission the request needs.
        An allowance spent down to half its last block is refilled in the background."""
        if caller.track != "interactive":
            return True
        limits, held = self._rate_limits(ctx, caller, config, window)
        if not all(held):
            return False
        for subject, limit, _ in limits:
            key = (ctx.tenant_id, subject, window)
            self._allowances[key] -= 1
            if self._allowances[key] <= self._blocks.get(key, 0) // 2:
                self._start_refill(ctx, subject, limit, window)
        return True

    async def _spend_held_or_refilled(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> bool:
        """``_spend_held``, refilling what is missing first: requests that find an allowance
        empty wait for one refill (``_refill``) instead of each writing a block in its own
        transaction. False once a refill hands out nothing (a full window, or the database
        unreachable): the request then takes the transaction path, which refuses it."""
        while not self._spend_held(ctx, caller, config, window):
            limits, held = self._rate_limits(ctx, caller, config, window)
            missing = [
                (ctx.tenant_id, subject, window)
                for (subject, _, _), local in zip(limits, held, strict=True)
                if not local
            ]
            if any(key in self._full for key in missing):
                return False
            refills = [
                asyncio.shield(self._start_refill(ctx, subject, limit, window))
                for (subject, limit, _), local in zip(limits, held, strict=True)
                if not local
            ]
            if not all(await asyncio.gather(*refills)):
                return False
        return True

    def _start_refill(
        self, ctx: TenantContext, subject: str, limit: int, window: int
    ) -> asyncio.Task[int]:
        key = (ctx.tenant_id, subject, window)
        refill = self._refills.get(key)
        if refill is None or refill.done():
            refill = self._refills[key] = asyncio.create_task(
                self._refill(ctx, subject, limit, window)
            )
        return refill

    async def _refill(self, ctx: TenantContext, subject: str, limit: int, window: int) -> int:
        """Take the next block of ``subject``'s window in a transaction of its own (started
        before the allowance runs out, so requests keep admitting from memory while it is
        written: on SQLite, behind whatever holds the write lock). Returns its size; 0 when
        the window is full or the block could not be taken."""
        key = (ctx.tenant_id, subject, window)
        try:
            async with self.registry.tenant_transaction(ctx) as session:
                block = await RateWindowRepository(session, ctx).take(
                    subject,
                    window,
                    limit,
                    share=self.settings.rate_block_share,
                    most=self.settings.rate_block_max,
                )
            self._grant(key, block)
            if not block:
                self._full.add(key)
            return block
        except Exception as exc:  # the requests' own path reports it (503) if it persists
            log.warning(
                "gateway_rate_refill_failed", tenant_id=str(ctx.tenant_id), error=type(exc).__name__
            )
            return 0
        finally:
            del self._refills[key]

    def _grant(self, key: tuple[uuid.UUID, str, int], block: int) -> None:
        if block:
            self._full.discard(key)
            self._allowances[key] = self._allowances.get(key, 0) + block
            self._blocks[key] = block

    async def _admit_rates(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        caller: Caller,
        config: TenantGatewayConfig,
        window: int,
        retry_after: int,
    ) -> list[tuple[str, int]]:
        """Admit an interactive request under its identity's and its tenant's rate limits.

        Each process takes admissions from the shared window rows in blocks
        (``RateWindowRepository.take``) and spends them from memory, so the limit is never
        exceeded across replicas and most requests write nothing. Returns the blocks this request
        took from the database, its own admission among them, to be granted once its
        transaction commits (a rolled-back block was never taken). Raises ``RateLimited`` with
        nothing spent."""
        if caller.track != "interactive":
            return []
        limits, held = self._rate_limits(ctx, caller, config, window)
        granted: list[tuple[str, int]] = []
        if not all(held):
            rates = RateWindowRepository(session, ctx)
            for (subject, limit, scope), local in zip(limits, held, strict=True):
                if local:
                    continue
                block = await rates.take(
                    subject,
                    window,
                    limit,
                    share=self.settings.rate_block_share,
                    most=self.settings.rate_block_max,
                )
                if not block:
                    raise RateLimited(scope, retry_after)
                granted.append((subject, block))
            if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
                await rates.forget_before(window - 1)
        for (subject, _, _), local in zip(limits, held, strict=True):
            if local:
                self._allowances[(ctx.tenant_id, subject, window)] -= 1
        return granted

    async def _allow(
        self, tenant_id: uuid.UUID, window: int, granted: list[tuple[str, int]]
    ) -> None:
        for subject, block in granted:
            key = (tenant_id, subject, window)
            self._grant(key, block)
            self._allowances[key] -= 1  # the admission of the request that took the block

    @staticmethod
    async def _release_expired(
        reservations: ReservationRepository, counters: CounterRepository, now: datetime
    ) -> None:
        """Release the reservations of calls never settled within their lease (their process
        died): what they held becomes available again, their usage stays unknown (zero)."""
        # Every expired reservation is taken before any counter is touched: the order a
        # settlement locks them in (reservation, then counters), so the two never deadlock.
        taken = [r for r in await reservations.expired(now) if await reservations.take(r.call_id)]
        for expired in taken:
            charges = sorted(charges_of(expired), key=lambda c: (c.scope, c.period))
            await counters.settle(charges, actual=(0, 0))
            log.warning("gateway_reservation_expired", call_id=str(expired.call_id))

    @staticmethod
    def cost(caller: Caller, endpoint: Endpoint | None, usage: TokenUsage) -> int:
        """Micro-dollars of ``usage`` at the endpoint's price table for the caller's track."""
        if endpoint is None:
            return 0
        return endpoint.prices(caller.track).cost(usage.input_tokens, usage.output_tokens)

    async def settle(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> int:
        """Release the reservation and record the actual usage, once. Returns the cost."""
        settlement = Settlement(ctx, caller, prepared, endpoint, usage, outcome)
        async with self.registry.tenant_transaction(ctx) as session:
            await self.settle_in(session, settlement)
        return settlement.cost

    async def settle_in(
        self, session: AsyncSession, settlement: Settlement, audit: AuditLog | None = None
    ) -> None:
        """Record ``settlement`` in the caller's transaction (the chat's closing one): it is
        settled when that transaction commits. A caller whose transaction fails hands it to
        ``settle_detached`` instead, and the reservation's lease makes that exactly once.
        ``audit``: the caller's log of that transaction (its actor is looked up once)."""
        await self.settle_all_in(session, [settlement], audit)

    async def settle_all_in(
        self,
        session: AsyncSession,
        settlements: Sequence[Settlement],
        audit: AuditLog | None = None,
    ) -> None:
        """Record ``settlements`` (one tenant's) in ``session``'s transaction: per call an audit
        event and a ledger row, its reservation released, its usage added to the counters —
        one statement per table for all of them."""
        if not settlements:
            return
        ctx = settlements[0].ctx
        for settlement in settlements:
            if settlement.endpoint is not None and not settlement.metered:
                settlement.metered = True
                metrics.settled(
                    ctx.tenant_id,
                    settlement.caller.route,
                    settlement.endpoint.model,
                    (settlement.usage.input_tokens, settlement.usage.output_tokens),
                    settlement.cost / 1_000_000,
                )
        # Locks in the order every writing transaction takes them: the tenant's audit head
        # first (a chat's closing transaction has appended its answer already), then the
        # reservations and the counters — the other order deadlocked on PostgreSQL.
        if audit is None:
            audit = AuditLog(session, ctx, subject=_subject(settlements[0].caller, ctx))
        await audit.record_all([event for s in settlements for event in _audit_events(s)])
        leased = [s.prepared.call_id for s in settlements if s.prepared.leased]
        taken = await ReservationRepository(session, ctx).take_all(leased) if leased else set()
        counters: dict[tuple[str, str], list[int]] = {}
        records: list[dict[str, Any]] = []
        day = f"{self.now():%Y-%m-%d}"
        for settlement in settlements:
            prepared, usage, endpoint = settlement.prepared, settlement.usage, settlement.endpoint
            released = not prepared.leased or prepared.call_id in taken
            if not released:
                # The lease ran out and a later admission released the reservation: only the
                # usage is added now, so nothing is released twice.
                log.warning("gateway_settled_after_lease", call_id=str(prepared.call_id))
            tokens = usage.input_tokens + usage.output_tokens if endpoint is not None else 0
            cost = settlement.cost
            for charge in prepared.charges:
                totals = counters.setdefault((charge.scope, charge.period), [0, 0, 0, 0])
                totals[0] += tokens
                totals[1] += cost
                if prepared.leased and released:
                    totals[2] += charge.tokens
                    totals[3] += charge.microdollars
            records.append(
                {
                    "call_id": prepared.call_id,
                    "user_id": settlement.caller.user_id,
                    "credential_id": settlement.caller.credential_id,
                    "track": settlement.caller.track,
                    "tier": prepared.decision.tier,
                    "endpoint": endpoint.name if endpoint else None,
                    "model": endpoint.model if endpoint else None,
                    "outcome": settlement.outcome,
                    "input_tokens": usage.input_tokens if endpoint else 0,
                    "output_tokens": usage.output_tokens if endpoint else 0,
                    "cost_microdollars": cost,
                    "prompt_hash": prepared.prompt_hash,
                    "day": day,
                }
            )
        await CounterRepository(session, ctx).add(
            [
                CounterDelta(scope, period, *totals)
                for (scope, period), totals in sorted(counters.items())
            ]
        )
        await UsageRepository(session, ctx).add_all(records)

    async def _write_settlements(self, settlements: Sequence[Settlement]) -> None:
        async with self.registry.tenant_transaction(settlements[0].ctx) as session:
            await self.settle_all_in(session, settlements)

    def settle_detached(self, settlement: Settlement) -> None:
        """Settle without the caller waiting: queued with this process's other settlements
        and written in a batch soon (``gateway.ledger``; ``settled()`` waits for it)."""
        self._ledger.put(settlement)

    async def _settle_shielded(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> int:
        """Settle even when the caller is being cancelled (a client that went away)."""
        task = self._settle_task(
            ctx, caller, prepared, endpoint=endpoint, usage=usage, outcome=outcome
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            log.warning("gateway_settle_after_cancel", call_id=str(prepared.call_id))
            raise

    def _settle_task(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> asyncio.Future[int]:
        task = asyncio.ensure_future(
            self.settle(ctx, caller, prepared, endpoint=endpoint, usage=usage, outcome=outcome)
        )
        self._settling.add(task)
        task.add_done_callback(self._settled_one)
        return task

    def _settled_one(self, task: asyncio.Future[int]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "gateway_settle_failed",
                error=type(task.exception()).__name__,
            )

    async def settled(self) -> None:
        """Write this process's queued settlements and wait for them and for rate refills
        under way (usage reads, shutdown, tests)."""
        await self._ledger.drain()
        while self._settling or self._refills:
            await asyncio.gather(
                *list(self._settling), *list(self._refills.values()), return_exceptions=True
            )

    # -- calling with fallback ------------------------------------------------------------

    def _provider_request(
        self, prepared: PreparedCall, request: GatewayRequest, ep: Endpoint
    ) -> Any:
        return ProviderRequest(
            model=ep.model,
            messages=tuple(prepared.messages),
            max_tokens=prepared.max_output,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop,
        )

    async def _with_fallback(
        self,
        prepared: PreparedCall,
        attempt: Callable[[Endpoint], Awaitable[T]],
        *,
        hold_slot: bool = False,
    ) -> tuple[Endpoint, T, int]:
        """Try the candidates in order: retries of one endpoint on 429/5xx/timeouts (jittered
        exponential backoff, or the provider's Retry-After when it is short), then the next
        endpoint, then the fallback tier. A provider that rejects the request (another 4xx)
        ends the call: another endpoint would not make our request valid."""
        settings = self.settings
        tried = 0
        for index, endpoint in enumerate(prepared.candidates):
            for retry in range(settings.retries_per_endpoint + 1):
                if not endpoint.breaker.allow():
                    break
                tried += 1
                try:
                    async with asyncio.timeout(settings.queue_timeout_seconds):
                        await endpoint.slots.acquire()
                except TimeoutError:
                    endpoint.breaker.release_probe()
                    break  # saturated here: try the next endpoint
                succeeded = False
                try:
                    async with asyncio.timeout(endpoint.spec.total_timeout_seconds):
                        result = await attempt(endpoint)
                    succeeded = True
                except (ProviderError, TimeoutError) as exc:
                    metrics.ATTEMPTS.labels(endpoint.name, "failed").inc()
                    failure = (
                        exc if isinstance(exc, ProviderError) else ProviderError("timeout", "total")
                    )
                    if not failure.falls_back:
                        endpoint.breaker.release_probe()
                        raise ModelProviderRejected(endpoint.name, failure.status) from None
                    endpoint.breaker.failure()
                    if failure.detail.startswith(EGRESS_REFUSED_PREFIX):
                        # The guard refused the address (a DNS answer that changed): audited
                        # with the call, and not retried — it would be refused again.
                        reason = failure.detail.removeprefix(EGRESS_REFUSED_PREFIX)
                        prepared.refused.append((endpoint.name, reason))
                        break
                    log.info(
                        "gateway_attempt_failed",
                        endpoint=endpoint.name,
                        kind=failure.kind,
                        status=failure.status,
                    )
                    jitter = random.uniform(0.5, 1.5)  # noqa: S311 - backoff jitter
                    delay = settings.retry_base_delay_seconds * (2**retry) * jitter
                    if failure.retry_after is not None:
                        if failure.retry_after > settings.max_retry_after_seconds:
                            endpoint.breaker.defer(failure.retry_after)
                            break
                        delay = failure.retry_after
                    if retry < settings.retries_per_endpoint:
                        await asyncio.sleep(delay)
                        continue
                    break
                except BaseException:
                    endpoint.breaker.release_probe()
                    raise
                finally:
                    if not (succeeded and hold_slot):
                        endpoint.slots.release()
                endpoint.breaker.success()
                metrics.ATTEMPTS.labels(endpoint.name, "ok").inc()
                if index > 0:
                    metrics.FALLBACKS.labels(endpoint.name).inc()
                return endpoint, result, index
        raise ModelUnavailable(prepared.decision.tier, tried)

    async def complete(
        self,
        ctx: TenantContext,
        request: GatewayRequest,
        caller: Caller,
        *,
        settle: Literal["now", "background", "caller"] = "now",
        admitted: PreparedCall | None = None,
    ) -> GatewayResult:
        """One completion. ``settle``: ``now`` before returning; ``background``: return as soon
        as the answer is in and settle in a background task (the HTTP route: the client does
        not wait for the ledger); ``caller``: the result's ``pending`` settlement is the
        caller's to record in its own transaction (``settle_in``), or to hand to
        ``settle_detached`` if that fails. The reservation holds until then, so quotas stay
        conservative meanwhile; ``settled()`` waits for this process's background settlements
        (usage reads do, to read their writes). ``admitted``: the call as ``reserve`` routed
        and admitted it, in a transaction that has committed."""
        if admitted is not None:
            prepared = admitted
        else:
            prepared, config = await self.prepare(ctx, request, caller)
            await self.admit(ctx, caller, prepared, config)
        try:
            endpoint, completion, index = await self._with_fallback(
                prepared,
                lambda ep: ep.provider.complete(self._provider_request(prepared, request, ep)),
            )
        except BaseException:
            self.settle_detached(
                Settlement(ctx, caller, prepared, None, TokenUsage(0, 0), "failed")
            )
            raise
        completion = _with_usage(completion, prepared)
        usage = completion.usage
        assert usage is not None
        pending = None
        if settle == "caller":
            pending = Settlement(ctx, caller, prepared, endpoint, usage, "ok")
            cost = pending.cost
        elif settle == "background":
            detached = Settlement(ctx, caller, prepared, endpoint, usage, "ok")
            cost = detached.cost
            self.settle_detached(detached)
        else:
            cost = await self._settle_shielded(
                ctx, caller, prepared, endpoint=endpoint, usage=usage, outcome="ok"
            )
        _span(prepared.decision, endpoint.name)
        return GatewayResult(
            call_id=prepared.call_id,
            text=completion.text,
            finish_reason=completion.finish_reason,
            usage=usage,
            cost_microdollars=cost,
            decision=prepared.decision,
            endpoint=endpoint.name,
            model=endpoint.model,
            fallbacks=index,
            pending=pending,
        )

    async def stream(
        self, ctx: TenantContext, request: GatewayRequest, caller: Caller
    ) -> GatewayStream:
        """Open a stream: everything up to the first token (routing, admission, fallback)
        happens before this returns, so a failure there is an ordinary error response."""
        prepared, config = await self.prepare(ctx, request, caller)
        await self.admit(ctx, caller, prepared, config)

        async def open_stream(ep: Endpoint) -> tuple[AsyncIterator[Delta], Delta | None]:
            source = ep.provider.stream(self._provider_request(prepared, request, ep))
            try:
                first = await source.__anext__()
            except StopAsyncIteration:
                raise ProviderError("bad_response", "empty stream") from None
            except BaseException:
                await _aclose(source)
                raise
            return source, first

        try:
            endpoint, (source, first), index = await self._with_fallback(
                prepared, open_stream, hold_slot=True
            )
        except BaseException:
            self.settle_detached(
                Settlement(ctx, caller, prepared, None, TokenUsage(0, 0), "failed")
            )
            raise
        _span(prepared.decision, endpoint.name)
        return GatewayStream(
            call_id=prepared.call_id,
            decision=prepared.decision,
            endpoint=endpoint.name,
            model=endpoint.model,
            fallbacks=index,
            events=self._relay(ctx, caller, prepared, endpoint, source, first),
        )

    async def _relay(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        endpoint: Endpoint,
        source: AsyncIterator[Delta],
        first: Delta | None,
    ) -> AsyncIterator[StreamEvent]:
        """Relay the stream; settle exactly once whether it ends, breaks or is abandoned."""
        pieces: list[str] = []
        usage: TokenUsage | None = None
        finish: str | None = None
        error_kind: str | None = None
        completed = False
        cost = 0
        deadline = time.monotonic() + endpoint.spec.total_timeout_seconds
        try:
            delta = first
            while delta is not None:
                if delta.text:
                    pieces.append(delta.text)
                    yield StreamEvent("delta", text=delta.text)
                usage = delta.usage or usage
                finish = delta.finish_reason or finish
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        delta = await source.__anext__()
                except StopAsyncIteration:
                    delta = None
            completed = True
        except (ProviderError, TimeoutError) as exc:
            error_kind = exc.kind if isinstance(exc, ProviderError) else "timeout"
            endpoint.breaker.failure()
            log.info("gateway_stream_broken", endpoint=endpoint.name, kind=error_kind)
        finally:
            endpoint.slots.release()
            await _aclose(source)
            final = _usage_of(usage, prepared, pieces)
            settlement = Settlement(
                ctx, caller, prepared, endpoint, final, "ok" if completed else "partial"
            )
            cost = settlement.cost
            self.settle_detached(settlement)
        if error_kind is not None:
            yield StreamEvent(
                "error",
                error_code=f"model_stream_{error_kind}",
                usage=final,
                cost_microdollars=cost,
            )
        else:
            yield StreamEvent(
                "done", finish_reason=finish or "stop", usage=final, cost_microdollars=cost
            )


def _finished(finish: str | None) -> bool:
    return finish is not None


def _usage_of(reported: TokenUsage | None, prepared: PreparedCall, pieces: list[str]) -> TokenUsage:
    if reported is not None and (reported.input_tokens or reported.output_tokens):
        return reported
    estimate = min(estimate_tokens("".join(pieces)), prepared.max_output) if pieces else 0
    return TokenUsage(prepared.input_tokens, estimate)


def _with_usage(completion: Completion, prepared: PreparedCall) -> Completion:
    if completion.usage is not None and (
        completion.usage.input_tokens or completion.usage.output_tokens
    ):
        return completion
    return replace(
        completion,
        usage=TokenUsage(
            prepared.input_tokens,
            min(estimate_tokens(completion.text), prepared.max_output) if completion.text else 0,
        ),
    )


async def _aclose(source: AsyncIterator[Delta]) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        with contextlib.suppress(ProviderError, RuntimeError):
            await close()
