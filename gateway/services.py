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

``GatewayService`` composes the parts, one module per concern:

- ``gateway.configuration``: each tenant's configuration and endpoints, cached
  (``TenantConfigs``);
- ``gateway.admission``: rate limits leased in blocks (``RateBlocks``) and the admission that
  counts them and reserves the quotas, all or nothing (``AdmissionControl``);
- ``gateway.budgets``: what a call charges against which quota, per UTC day and month, and the
  release of reservations whose lease ran out;
- ``gateway.settlement``: settling a call once, at once or in the batched ledger writer
  (``Settlements``, ``SettlementQueue``);
- ``gateway.calls``: routing, fallback, completions and streams (``Calls``);
- ``gateway.requests``: the words they share (``GatewayRequest``, ``Caller``, ``PreparedCall``,
  the token estimate).

Its methods are the parts' own, bound when the service is built: a wrapper would add a call and
a coroutine to every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admission import EXPIRY_CHECK_SECONDS, AdmissionControl, RateBlocks
from gateway.calls import Calls, GatewayResult, GatewayStream, StreamEvent
from gateway.configuration import TenantConfigs, TenantGatewayConfig
from gateway.fleet import Fleet
from gateway.requests import (
    Caller,
    GatewayRequest,
    PreparedCall,
    estimate_messages,
    estimate_tokens,
    prompt_hash,
    trim,
)
from gateway.router import Router
from gateway.settlement import Settlement, Settlements
from gateway.settlement import cost as call_cost
from kernel.egress import EgressPolicy
from kernel.settings import GatewaySettings
from kernel.tenancy import TenantContext
from keys.services import Keyring
from residency.registry import RegionRegistry

__all__ = [
    "EXPIRY_CHECK_SECONDS",
    "Caller",
    "GatewayRequest",
    "GatewayResult",
    "GatewayService",
    "GatewayStream",
    "PreparedCall",
    "Settlement",
    "StreamEvent",
    "TenantGatewayConfig",
    "estimate_messages",
    "estimate_tokens",
    "prompt_hash",
    "trim",
]


class GatewayService:
    """Model calls for a tenant: ``complete`` and ``stream`` (see the module docstring)."""

    cost = staticmethod(call_cost)

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
        # The parts, one per concern (see the module docstring). They share ``now`` as given
        # here; ``egress`` (public https only unless the operator allow-lists more) is the
        # configuration's, behind the property below.
        self.configs = TenantConfigs(registry, keyring, fleet, settings, egress or EgressPolicy())
        self.rate_blocks = RateBlocks(registry, settings)
        self.settlements = Settlements(registry, settings, now)
        self.admission = AdmissionControl(
            registry, settings, self.rate_blocks, self.settlements.ledger, now
        )
        self.calls = Calls(self.configs, router, settings, self.admission, self.settlements)

        # -- tenant configuration (``gateway.configuration``) -------------------------------
        self.invalidate = self.configs.invalidate
        self.tenant_config = self.configs.tenant_config
        self.tiers = self.configs.tiers
        self.prompt_room = self.configs.prompt_room
        self.configured_generation = self.configs.configured_generation
        # -- preparation and admission (``gateway.calls``, ``gateway.admission``) -----------
        self.prepare = self.calls.prepare
        self.admit = self.admission.admit
        self.admit_in = self.admission.admit_in
        # -- settlement (``gateway.settlement``) --------------------------------------------
        self.settle = self.settlements.settle
        self.settle_in = self.settlements.settle_in
        self.settle_all_in = self.settlements.settle_all_in
        self.settle_detached = self.settlements.settle_detached
        # -- calling with fallback (``gateway.calls``) --------------------------------------
        self.complete = self.calls.complete
        self.stream = self.calls.stream

    @property
    def egress(self) -> EgressPolicy:
        """Where a tenant's BYO model URL may lead, checked when it is called."""
        return self.configs.egress

    @egress.setter
    def egress(self, policy: EgressPolicy) -> None:
        self.configs.egress = policy

    async def reserve(
        self, session: AsyncSession, ctx: TenantContext, request: GatewayRequest, caller: Caller
    ) -> PreparedCall:
        """Route ``request`` and admit it in the caller's writing transaction (the chat's
        first one: no transaction of its own); ``complete(admitted=...)`` then makes the call.
        If that transaction rolls back, so does the admission."""
        prepared, config = await self.calls.prepare(ctx, request, caller)
        await self.admission.admit_in(session, ctx, caller, prepared, config)
        return prepared

    async def settled(self) -> None:
        """Write this process's queued settlements and wait for them and for rate refills
        under way (usage reads, shutdown, tests)."""
        await self.settlements.ledger.drain()
        while waiting := [*self.settlements.running(), *self.rate_blocks.refilling()]:
            await asyncio.gather(*waiting, return_exceptions=True)
