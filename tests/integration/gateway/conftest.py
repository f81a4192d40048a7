"""A gateway deployment: the session's databases, with each region's fleet pointing at model
peers on 127.0.0.1 that record what reaches them (eu and us have separate peers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from kernel.settings import GatewaySettings, ModelEndpointSettings, RouterSettings, Settings
from tests.conftest import Api, Deployment
from tests.peers.llm_peer import LlmPeer, RunningPeer


@dataclass
class Peers:
    eu_small: LlmPeer
    eu_mid_a: LlmPeer
    eu_mid_b: LlmPeer
    eu_frontier: LlmPeer
    us: LlmPeer
    byo: LlmPeer

    def eu(self) -> list[LlmPeer]:
        return [self.eu_small, self.eu_mid_a, self.eu_mid_b, self.eu_frontier]


def endpoint(name: str, tier: str, peer: LlmPeer, **extra: Any) -> ModelEndpointSettings:
    prices = {"small": (0.1, 0.4), "mid": (0.5, 1.5), "frontier": (3.0, 15.0)}[tier]
    return ModelEndpointSettings(
        name=name,
        tier=tier,  # type: ignore[arg-type]
        base_url=peer.base_url,
        model=f"{name}-model",
        input_price_per_mtok=prices[0],
        output_price_per_mtok=prices[1],
        context_window=32000,
        **extra,
    )


def gateway_settings(base: Settings, peers: Peers, **gateway: Any) -> Settings:
    regions = dict(base.regions)
    regions["eu"] = regions["eu"].model_copy(
        update={
            "models": (
                endpoint("eu-small", "small", peers.eu_small),
                endpoint("eu-mid-a", "mid", peers.eu_mid_a, aliases=("house-mid",)),
                endpoint("eu-mid-b", "mid", peers.eu_mid_b),
                endpoint("eu-frontier", "frontier", peers.eu_frontier, provider="anthropic"),
            )
        }
    )
    regions["us"] = regions["us"].model_copy(
        update={
            "models": tuple(
                endpoint(f"us-{tier}", tier, peers.us) for tier in ("small", "mid", "frontier")
            )
        }
    )
    settings = {
        "router": RouterSettings(classifier="none"),
        "retry_base_delay_seconds": 0.01,
        "breaker_cooldown_seconds": 60.0,
        **gateway,
    }
    return base.model_copy(update={"regions": regions, "gateway": GatewaySettings(**settings)})


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    names = ["eu_small", "eu_mid_a", "eu_mid_b", "eu_frontier", "us", "byo"]
    running = [RunningPeer(LlmPeer(name=name)) for name in names]
    started = [r.__enter__() for r in running]
    try:
        yield Peers(*started)
    finally:
        for r in running:
            r.__exit__()


@pytest.fixture(scope="module")
async def gw_app(deployment: Deployment, peers: Peers) -> Litestar:
    return create_app(gateway_settings(deployment.settings, peers))


@pytest.fixture(scope="module")
async def gw_client(gw_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=gw_app) as client:
        yield client


@pytest.fixture
def gw(gw_client: AsyncTestClient[Litestar], peers: Peers) -> Api:
    for peer in [*peers.eu(), peers.us, peers.byo]:
        peer.requests.clear()
        peer.script.clear()
    return Api(gw_client)
