"""A tenant's gateway configuration, cached per process: its model policy, quotas, rate limits
and BYO models (``TenantGatewayConfig``), and the endpoints each model tier resolves to for it.

A configuration is read in a read-only transaction of the tenant's region and cached under the
tenant's epoch (``kernel.epochs``) for contexts that carry one, else for
``config_cache_seconds``; an admin change calls ``invalidate``. A tenant's BYO model replaces a
tier (its URL checked by the egress guard at call time); every other tier resolves to the
tenant's own region's endpoints, never another region's.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from gateway.errors import UnknownModel
from gateway.fleet import TIERS, Endpoint, Fleet, byo_endpoint_name
from gateway.repositories import ByoModelRepository, PolicyRepository
from gateway.router import ModelPolicy
from kernel.egress import EgressPolicy
from kernel.epochs import EpochCache
from kernel.settings import GatewaySettings, ModelEndpointSettings
from kernel.tenancy import TenantContext
from keys.services import Keyring
from residency.errors import RegionUnavailable
from residency.registry import RegionRegistry


@dataclass(frozen=True, slots=True)
class TenantGatewayConfig:
    policy: ModelPolicy
    quotas: dict[str, Any]
    identity_rpm: int
    tenant_rpm: int
    byo: dict[str, tuple[str, ModelEndpointSettings]]  # tier -> (fleet key, spec)


def resolve_model(
    model: str, tiers: dict[str, list[Endpoint]]
) -> tuple[str | None, Endpoint | None]:
    """The tier and the endpoint a request's ``model`` names: ``auto`` names neither, a tier
    only itself, an endpoint's name or alias both. ``UnknownModel`` for anything else."""
    if model == "auto":
        return None, None
    if model in TIERS:
        return model, None
    for tier, endpoints in tiers.items():
        for endpoint in endpoints:
            if model == endpoint.name or model in endpoint.aliases:
                return tier, endpoint
    raise UnknownModel(model)


class TenantConfigs:
    """Each tenant's gateway configuration and endpoints, cached (see the module docstring)."""

    def __init__(
        self,
        registry: RegionRegistry,
        keyring: Keyring,
        fleet: Fleet,
        settings: GatewaySettings,
        egress: EgressPolicy,
    ) -> None:
        self.registry = registry
        self.keyring = keyring
        self.fleet = fleet
        self.settings = settings
        # Where a tenant's BYO model URL may lead (``kernel.egress``): public https only, unless
        # the operator allow-lists more.
        self.egress = egress
        # Tenant configurations: under the tenant's epoch (``kernel.epochs``) for contexts that
        # carry one, else for ``config_cache_seconds``.
        self._epoch_configs: EpochCache[TenantGatewayConfig] = EpochCache()
        self._configs: dict[uuid.UUID, tuple[float, TenantGatewayConfig]] = {}

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
        requested, preferred = resolve_model(model, tiers)
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
