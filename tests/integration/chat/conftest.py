"""A chat deployment: the session's databases, every eu tier served by one scripted model peer
on 127.0.0.1 (what it receives is recorded), us by another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.peers.llm_peer import LlmPeer, RunningPeer
from tests.support.chat import chat_settings
from tests.support.deployments import Deployment
from tests.support.tenants import Api


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
