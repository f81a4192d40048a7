"""Rate windows hand out admissions in blocks: two replicas, each spending its blocks from
memory, together admit exactly the limit — never one more — and most requests write nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.main import create_app
from app.runtime import Runtime
from gateway.models import RateWindow
from tests.conftest import Api, Deployment, TenantHandle, context_of
from tests.integration.gateway.conftest import Peers, gateway_settings
from tests.integration.gateway.test_gateway_api import CHAT, ask

LIMIT = 320  # blocks of 10 (1/32 of what is left) while the window is far from full


@pytest.fixture
async def replica(deployment: Deployment, peers: Peers) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(gateway_settings(deployment.settings, peers))) as b:
        yield Api(b)


async def _handed_out(runtime: Runtime, tenant: TenantHandle, subject: str) -> list[int]:
    async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
        rows = await session.execute(
            select(RateWindow.count).where(
                RateWindow.tenant_id == uuid.UUID(tenant.id), RateWindow.subject == subject
            )
        )
        return [int(count) for count in rows.scalars()]


async def test_two_replicas_admit_exactly_the_limit_spending_blocks_from_memory(
    gw: Api, replica: Api, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    rates = {"requests": {"identity_per_minute": LIMIT}}
    put = await gw.client.put("/v1/admin/quotas", json=rates, headers=tenant.admin)
    assert put.status_code == 200, put.text
    key = (await gw.new_key(tenant, (await gw.new_user(tenant))["id"]))["key"]
    headers = {"Authorization": f"Bearer {key}"}
    subject = f"key:{uuid.UUID(key.split('_')[2])}"
    if time.time() % 60 > 40:  # the whole run must fall in one minute's window
        await asyncio.sleep(61 - time.time() % 60)

    async def send(api: Api) -> int:
        return (await api.client.post(CHAT, json=ask("hi"), headers=headers)).status_code

    assert await send(gw) == 200
    assert await _handed_out(runtime, tenant, subject) == [LIMIT // 32]  # one block, one write
    assert [await send(gw) for _ in range(5)] == [200] * 5
    assert await _handed_out(runtime, tenant, subject) == [LIMIT // 32]  # spent from memory

    admitted, refused_in_a_row = 6, 0
    replicas = [replica, gw]
    turn = 0
    while refused_in_a_row < 6:
        status = await send(replicas[turn % 2])
        turn += 1
        assert status in (200, 429)
        admitted += status == 200
        refused_in_a_row = refused_in_a_row + 1 if status == 429 else 0
    assert admitted == LIMIT
    assert await _handed_out(runtime, tenant, subject) == [LIMIT]
