"""A chat deployment: the session's databases, every eu tier served by one scripted model peer
on 127.0.0.1 (what it receives is recorded), us by another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from kernel.settings import GatewaySettings, RouterSettings, Settings
from tests.conftest import Api, Deployment
from tests.integration.gateway.conftest import endpoint
from tests.peers.llm_peer import LlmPeer, RunningPeer


def chat_settings(base: Settings, eu: LlmPeer, us: LlmPeer) -> Settings:
    regions = dict(base.regions)
    regions["eu"] = regions["eu"].model_copy(
        update={
            "models": tuple(
                endpoint(f"eu-{tier}", tier, eu) for tier in ("small", "mid", "frontier")
            )
        }
    )
    regions["us"] = regions["us"].model_copy(
        update={
            "models": tuple(
                endpoint(f"us-{tier}", tier, us) for tier in ("small", "mid", "frontier")
            )
        }
    )
    gateway = GatewaySettings(
        router=RouterSettings(classifier="none"),
        retry_base_delay_seconds=0.01,
        retries_per_endpoint=0,
        breaker_failures=1000,
    )
    return base.model_copy(update={"regions": regions, "gateway": gateway})


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[LlmPeer, LlmPeer]]:
    eu, us = RunningPeer(LlmPeer(name="eu")), RunningPeer(LlmPeer(name="us"))
    started = (eu.__enter__(), us.__enter__())
    try:
        yield started
    finally:
        eu.__exit__()
        us.__exit__()


@pytest.fixture(scope="module")
async def chat_app(deployment: Deployment, model: tuple[LlmPeer, LlmPeer]) -> Litestar:
    return create_app(chat_settings(deployment.settings, *model))


@pytest.fixture(scope="module")
async def chat_client(chat_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=chat_app) as client:
        yield client


@pytest.fixture
def chat(chat_client: AsyncTestClient[Litestar], model: tuple[LlmPeer, LlmPeer]) -> Api:
    for peer in model:
        peer.requests.clear()
        peer.script.clear()
        peer.by_model.clear()
    return Api(chat_client)


@pytest.fixture
def peer(model: tuple[LlmPeer, LlmPeer]) -> LlmPeer:
    return model[0]


def sse_events(body: str) -> list[tuple[str, Any]]:
    import json

    events = []
    for block in body.strip().split("\n\n"):
        kind, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((kind, json.loads(data) if data.startswith(("{", "[")) else data))
    return events
