"""The model fleet: endpoints per region and tier, each with a provider adapter, a concurrency
slot pool and a circuit breaker.

Region pinning: a tenant's endpoints are only ever looked up through
``RegionRegistry.model_endpoints_for(ctx, tier)`` (its own region's configuration) or its own
BYO model rows; no code path here takes a region name from a request. Breaker and slot state is
per process (each replica learns an endpoint's health itself); budgets and rate limits, which
must hold across replicas, live in the regional database instead.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.adapters.anthropic import AnthropicProvider
from gateway.adapters.base import ChatProvider
from gateway.adapters.llamacpp import LlamaCppProvider
from gateway.adapters.openai import OpenAIProvider
from kernel.egress import EgressPolicy
from kernel.settings import GatewaySettings, ModelEndpointSettings
from residency.registry import RegionDataPlane

TIERS = ("small", "mid", "frontier")
Clock = Callable[[], float]


def byo_endpoint_name(tier: str) -> str:
    """The name a tenant's own model of ``tier`` answers to."""
    return f"byo-{tier}"


def model_choices(regions: Iterable[RegionDataPlane]) -> list[str]:
    """Every ``model`` a request may name in this deployment: ``auto``, a tier, the name or an
    alias of an endpoint some region configures, or a tenant's own model of a tier. Which
    endpoints and own models a tenant has depends on its region and its BYO models."""
    configured = [
        name for region in regions for m in region.models for name in (m.name, *m.aliases)
    ]
    byo = [byo_endpoint_name(tier) for tier in TIERS]
    return list(dict.fromkeys(("auto", *TIERS, *configured, *byo)))


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after ``cooldown``
    (one probe call at a time) → closed on the probe's success, open again on its failure.

    ``defer(seconds)`` honours a provider's Retry-After: the endpoint is skipped until then.
    """

    def __init__(self, threshold: int, cooldown: float, clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.not_before = 0.0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        if self.clock() < self.not_before:
            return False
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        if self.probing or self.opened_at is not None:
            self.opened_at = self.clock()
            self.probing = False
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()

    def release_probe(self) -> None:
        """A probe that ended neither in success nor failure (e.g. the client went away)."""
        self.probing = False

    def defer(self, seconds: float) -> None:
        self.not_before = max(self.not_before, self.clock() + seconds)


@dataclass(frozen=True, slots=True)
class Prices:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """Micro-dollars (a price per million tokens is the micro-dollar price of one token)."""
        return math.ceil(input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok)


@dataclass(eq=False)
class Endpoint:
    key: str
    name: str
    tier: str
    model: str
    spec: ModelEndpointSettings
    provider: ChatProvider
    breaker: CircuitBreaker
    slots: asyncio.Semaphore
    byo: bool = False
    aliases: tuple[str, ...] = field(default=())

    def prices(self, track: str) -> Prices:
        spec = self.spec
        if track == "batch":
            return Prices(
                spec.batch_input_price_per_mtok
                if spec.batch_input_price_per_mtok is not None
                else spec.input_price_per_mtok / 2,
                spec.batch_output_price_per_mtok
                if spec.batch_output_price_per_mtok is not None
                else spec.output_price_per_mtok / 2,
            )
        return Prices(spec.input_price_per_mtok, spec.output_price_per_mtok)


def build_provider(
    spec: ModelEndpointSettings, settings: GatewaySettings, egress: EgressPolicy | None = None
) -> ChatProvider:
    """The provider of one endpoint; ``egress``: the guard for a URL a tenant configured (the
    operator's own endpoints are trusted configuration and go without)."""
    api_key = spec.api_key.get_secret_value() if spec.api_key else None
    if spec.provider == "llamacpp-local":
        return LlamaCppProvider(
            spec.model_path,
            model_sha256=spec.model_sha256,
            context_window=spec.context_window,
            threads=settings.local_threads,
            max_concurrency=settings.local_max_concurrency,
        )
    if spec.provider == "anthropic":
        return AnthropicProvider(
            spec.base_url,
            api_key=api_key,
            connect_timeout=spec.connect_timeout_seconds,
            read_timeout=spec.read_timeout_seconds,
            max_connections=spec.max_concurrency,
            egress=egress,
        )
    return OpenAIProvider(
        spec.base_url,
        api_key=api_key,
        connect_timeout=spec.connect_timeout_seconds,
        read_timeout=spec.read_timeout_seconds,
        max_connections=spec.max_concurrency,
        egress=egress,
    )


class Fleet:
    """Process-wide cache of endpoint runtimes, keyed by region and endpoint (or BYO row)."""

    def __init__(self, settings: GatewaySettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._endpoints: dict[str, Endpoint] = {}

    def endpoint(
        self,
        key: str,
        spec: ModelEndpointSettings,
        *,
        byo: bool = False,
        egress: EgressPolicy | None = None,
    ) -> Endpoint:
        found = self._endpoints.get(key)
        if found is None:
            found = Endpoint(
                key=key,
                name=spec.name,
                tier=spec.tier,
                model=spec.model,
                spec=spec,
                provider=build_provider(spec, self.settings, egress),
                breaker=CircuitBreaker(
                    self.settings.breaker_failures,
                    self.settings.breaker_cooldown_seconds,
                    self.clock,
                ),
                slots=asyncio.Semaphore(spec.max_concurrency),
                byo=byo,
                aliases=spec.aliases,
            )
            self._endpoints[key] = found
        return found

    def retire(self, prefix: str, keep: str | None = None) -> None:
        """Forget endpoints under ``prefix`` (a replaced BYO model), except ``keep``."""
        for key in [k for k in self._endpoints if k.startswith(prefix) and k != keep]:
            endpoint = self._endpoints.pop(key)
            asyncio.get_running_loop().create_task(endpoint.provider.aclose())

    async def aclose(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.provider.aclose()
        self._endpoints.clear()
