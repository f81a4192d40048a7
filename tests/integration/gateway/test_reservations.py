"""Quota reservations are leases: a process that dies between admission and settlement does not
hold a tenant's budget forever, and a call that settles after its lease ran out is not
released twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from app.runtime import Runtime
from audit.services import AuditLog
from gateway.adapters.base import ModelMessage, TokenUsage
from gateway.repositories import CounterRepository
from gateway.services import Caller, GatewayRequest, Settlement
from kernel.audit_events import AuditAction, ResourceType
from tests.support.deployments import Deployment
from tests.support.gateway import CHAT, Peers, ask, gateway_settings
from tests.support.http import assert_problem
from tests.support.tenants import Api


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
            messages=(ModelMessage("user", "hi"),), model="small", max_tokens=250
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
            ctx,
            caller,
            prepared,
            endpoint=prepared.candidates[0],
            usage=TokenUsage(3, 4),
            outcome="ok",
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


async def test_answers_and_settlements_running_together_never_deadlock(
    gw: Api, peers: Peers, deployment: Deployment
) -> None:
    """A chat's closing transaction appends its answer to the audit chain and then settles its
    model call; a detached settlement runs on its own. Both take the audit head before the
    counters, so on PostgreSQL neither waits on the other in a cycle (the reverse order did)."""
    tenant = await gw.new_tenant("eu")
    put = await gw.client.put(
        "/v1/admin/quotas", json={"tenant": {"day": {"tokens": 10**9}}}, headers=tenant.admin
    )
    assert put.status_code == 200, put.text
    runtime = Runtime.build(gateway_settings(deployment.settings, peers))
    try:
        ctx = await runtime.authenticator.authenticate(f"Bearer {tenant.admin_key}")
        caller = Caller.of(ctx, "concurrent-settlements")
        request = GatewayRequest(
            messages=(ModelMessage("user", "hi"),), model="small", max_tokens=8
        )
        calls = []
        for _ in range(16):
            prepared, config = await runtime.gateway.prepare(ctx, request, caller)
            await runtime.gateway.admit(ctx, caller, prepared, config)
            endpoint = prepared.candidates[0]
            calls.append(Settlement(ctx, caller, prepared, endpoint, TokenUsage(2, 3), "ok"))

        async def closing(settlement: Settlement) -> None:
            async with runtime.registry.tenant_transaction(ctx) as session:
                audit = AuditLog(session, ctx, request_id=caller.request_id)
                await audit.record(
                    AuditAction.CHAT_ANSWERED,
                    resource_type=ResourceType.CHAT_SESSION,
                    resource_id=uuid.uuid4(),
                )
                await asyncio.sleep(0.01)
                await runtime.gateway.settle_in(session, settlement, audit)

        async def detached(settlement: Settlement) -> None:
            s = settlement
            await runtime.gateway.settle(
                ctx, caller, s.prepared, endpoint=s.endpoint, usage=s.usage, outcome="ok"
            )

        await asyncio.gather(*(closing(s) if i % 2 else detached(s) for i, s in enumerate(calls)))
        async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
            day = await CounterRepository(session, ctx).get(
                "tenant", f"d{datetime.now(UTC):%Y-%m-%d}"
            )
        assert day is not None
        assert (day.reserved_tokens, day.used_tokens) == (0, 16 * 5)
    finally:
        await runtime.dispose()
