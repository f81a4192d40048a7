"""Quota reservations are leases: a process that dies between admission and settlement does not
hold a tenant's budget forever, and a call that settles after its lease ran out is not
released twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.runtime import Runtime
from gateway.adapters.base import ChatMessage, Usage
from gateway.repositories import CounterRepository
from gateway.services import Caller, GatewayRequest
from tests.conftest import Api, Deployment, assert_problem
from tests.integration.gateway.conftest import Peers, gateway_settings
from tests.integration.gateway.test_gateway_api import CHAT, ask


async def test_a_dead_process_reservation_is_released_after_its_lease(
    gw: Api, peers: Peers, deployment: Deployment
) -> None:
    tenant = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/quotas", json={"tenant": {"day": {"tokens": 300}}}, headers=tenant.admin
    )
    assert put.status_code == 200, put.text

    # Another replica, whose leases last one second, admits a call and dies before settling.
    dead = Runtime.build(gateway_settings(deployment.settings, peers, reservation_lease_seconds=1))
    try:
        ctx = await dead.authenticator.authenticate(f"Bearer {tenant.admin_key}")
        caller = Caller.of(ctx, "request-of-a-dead-process")
        request = GatewayRequest(
            messages=(ChatMessage("user", "hi"),), model="small", max_tokens=250
        )
        prepared, config = await dead.gateway.prepare(ctx, request, caller)
        await dead.gateway.admit(ctx, caller, prepared, config)

        # While the lease runs, the reservation holds: the budget has no room for another.
        held = await gw.client.post(CHAT, json=ask("hi", max_tokens=250), headers=tenant.admin)
        assert_problem(held, 429, "quota_exhausted")

        await asyncio.sleep(1.2)
        # The next admission after the lease releases it (on any replica).
        freed = await gw.client.post(CHAT, json=ask("hi", max_tokens=250), headers=tenant.admin)
        assert freed.status_code == 200, freed.text
        freed_tokens = freed.json()["usage"]["total_tokens"]

        # The "dead" call was only slow: it settles now. Its usage counts; its reservation,
        # already released, is not released a second time.
        await dead.gateway.settle(
            ctx, caller, prepared, endpoint=prepared.candidates[0], usage=Usage(3, 4), outcome="ok"
        )
        # Usage reads wait for the API's own pending settlements.
        usage = await gw.client.get("/v1/usage?group_by=day", headers=tenant.admin)
        assert usage.status_code == 200, usage.text

        async with dead.registry.tenant_transaction(ctx, read_only=True) as session:
            day = await CounterRepository(session, ctx).get(
                "tenant", f"d{datetime.now(UTC):%Y-%m-%d}"
            )
        assert day is not None
        assert day.reserved_tokens == 0
        assert day.used_tokens == freed_tokens + 7
    finally:
        await dead.dispose()
