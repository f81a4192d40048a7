"""Rate windows hand out admissions in blocks: two replicas, each spending its blocks from
memory, together admit exactly the limit — never one more — and most requests write nothing.
An allowance spent down to half its block is refilled in the background, once, and requests
that find it empty wait for that one refill instead of each writing a block."""

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
from gateway.adapters.base import ModelMessage
from gateway.models import RateWindow
from gateway.services import Caller, GatewayRequest
from tests.support.deployments import Deployment
from tests.support.gateway import CHAT, Peers, ask, gateway_settings
from tests.support.tenants import Api, TenantHandle, context_of

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


async def _settled_count(runtime: Runtime, tenant: TenantHandle, subject: str) -> int:
    """The window's count once background refills have stopped changing it."""
    seen: list[int] = []
    for _ in range(50):
        seen.append(sum(await _handed_out(runtime, tenant, subject)))
        if len(seen) >= 4 and len(set(seen[-4:])) == 1:
            break
        await asyncio.sleep(0.05)
    return seen[-1]


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

    first = LIMIT // 32
    assert await send(gw) == 200
    assert await _handed_out(runtime, tenant, subject) == [first]  # one block, one write
    assert [await send(gw) for _ in range(3)] == [200] * 3
    assert await _handed_out(runtime, tenant, subject) == [first]  # spent from memory
    # The fifth spends the allowance down to half its block: one refill, in the background.
    assert await send(gw) == 200
    second = (LIMIT - first) // 32
    assert await _settled_count(runtime, tenant, subject) == first + second

    admitted, refused_in_a_row = 5, 0
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


async def test_a_burst_waits_for_one_refill_instead_of_each_request_taking_a_block(
    gw: Api, peers: Peers, deployment: Deployment, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    rates = {"requests": {"identity_per_minute": LIMIT}}
    put = await gw.client.put("/v1/admin/quotas", json=rates, headers=tenant.admin)
    assert put.status_code == 200, put.text
    if time.time() % 60 > 50:
        await asyncio.sleep(61 - time.time() % 60)
    replica = Runtime.build(gateway_settings(deployment.settings, peers))
    try:
        ctx = await replica.authenticator.authenticate(f"Bearer {tenant.admin_key}")
        caller = Caller.of(ctx, "burst")
        request = GatewayRequest(
            messages=(ModelMessage("user", "hi"),), model="small", max_tokens=8
        )
        prepared, config = await replica.gateway.prepare(ctx, request, caller)
        # 40 admissions at once, all finding the allowance empty: one refill at a time serves
        # them (blocks of 10, 9, 9, 8, 8 and one taken ahead), where 40 transactions of their
        # own would each have taken a block (about 230 of the window's 320 in all).
        await asyncio.gather(
            *(replica.gateway.admit(ctx, caller, prepared, config) for _ in range(40))
        )
        await replica.gateway.settled()
        subject = f"key:{caller.credential_id}"
        (handed_out,) = await _handed_out(runtime, tenant, subject)
        assert 40 <= handed_out <= 40 + 2 * (LIMIT // 32)
    finally:
        await replica.dispose()
