"""Calls: one model call, from the request to the answer or the stream.

One call: resolve the tenant's policy and fleet (``gateway.configuration``: its own region's
endpoints, or its BYO model) → trim to the token budget → route to a tier → admit
(``gateway.admission``: request-rate limits and a quota reservation of the worst-case cost,
atomically, in the regional database) → call with retries, circuit breakers and fallback →
settle (``gateway.settlement``: release the reservation, add the actual usage, write one ledger
row and one audit event holding only a hash of the prompt).

A call that fails settles zero and releases its reservation; a stream settles exactly once
whether it ends, breaks after its first token (what was generated) or is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import structlog
from opentelemetry import trace

from gateway import metrics
from gateway.adapters.base import (
    EGRESS_REFUSED_PREFIX,
    Completion,
    Delta,
    ProviderError,
    ProviderRequest,
    TokenUsage,
)
from gateway.admission import AdmissionControl
from gateway.configuration import TenantConfigs, TenantGatewayConfig, resolve_model
from gateway.errors import InputTooLong, ModelProviderRejected, ModelUnavailable
from gateway.fleet import Endpoint
from gateway.requests import Caller, GatewayRequest, PreparedCall, estimate_tokens, trim
from gateway.router import RouteDecision, RouteInput, Router
from gateway.settlement import Settlement, Settlements
from kernel.settings import GatewaySettings
from kernel.tenancy import TenantContext

log = structlog.get_logger("bulwark.gateway")
T = TypeVar("T")


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


def _span(decision: RouteDecision, endpoint: str | None = None) -> None:
    span = trace.get_current_span()
    if not span.is_recording():  # e.g. a judge call after its request's span ended
        return
    span.set_attribute("bulwark.gateway.tier", decision.tier)
    span.set_attribute("bulwark.gateway.route_reason", decision.reason)
    if endpoint:
        span.set_attribute("bulwark.gateway.endpoint", endpoint)


class Calls:
    """Model calls for a tenant: ``complete`` and ``stream`` (see the module docstring)."""

    def __init__(
        self,
        configs: TenantConfigs,
        router: Router,
        settings: GatewaySettings,
        admission: AdmissionControl,
        settlements: Settlements,
    ) -> None:
        self.configs = configs
        self.router = router
        self.settings = settings
        self.admission = admission
        self.settlements = settlements

    async def prepare(
        self, ctx: TenantContext, request: GatewayRequest, caller: Caller
    ) -> tuple[PreparedCall, TenantGatewayConfig]:
        """Route ``request``: the tenant's tiers, the prompt trimmed to the input budget, the
        tier the router picks, the endpoints whose window fits, the worst-case cost."""
        config = await self.configs.tenant_config(ctx)
        tiers = self.configs.tiers(ctx, config)
        requested, preferred = resolve_model(request.model, tiers)
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
            await self.admission.admit(ctx, caller, prepared, config)
        try:
            endpoint, completion, index = await self._with_fallback(
                prepared,
                lambda ep: ep.provider.complete(self._provider_request(prepared, request, ep)),
            )
        except BaseException:
            self.settlements.settle_detached(
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
            self.settlements.settle_detached(detached)
        else:
            cost = await self.settlements.settle_shielded(
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
        await self.admission.admit(ctx, caller, prepared, config)

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
            self.settlements.settle_detached(
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
            self.settlements.settle_detached(settlement)
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
