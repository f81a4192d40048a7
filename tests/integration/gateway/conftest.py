"""A gateway deployment: the session's databases, with each region's fleet pointing at model
peers on 127.0.0.1 that record what reaches them (eu and us have separate peers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.peers.llm_peer import LlmPeer, RunningPeer
from tests.support.deployments import Deployment
from tests.support.gateway import Peers, gateway_settings
from tests.support.tenants import Api


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
