"""Settlements nobody waits for are written in batches: every call still gets its ledger row,
its audit event (in an unbroken chain) and its counters, soon after the answer and without
anyone asking; a replica that shuts down writes what it still holds."""

from __future__ import annotations

import asyncio
import uuid

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.main import create_app
from app.runtime import Runtime
from audit.models import AuditEvent
from gateway.models import UsageCounter, UsageRecord
from kernel.audit_events import AuditAction
from tests.support.deployments import Deployment
from tests.support.gateway import CHAT, Peers, ask, gateway_settings
from tests.support.tenants import Api, TenantHandle, context_of


async def _ledger(runtime: Runtime, tenant: TenantHandle) -> tuple[int, int, int, int]:
    """Usage rows, their total tokens, model-call audit events, and the tenant's day counter."""
    tenant_id = uuid.UUID(tenant.id)
    async with runtime.registry.tenant_transaction(context_of(tenant), read_only=True) as s:
        rows, tokens = (
            await s.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0
                    ),
                ).where(UsageRecord.tenant_id == tenant_id)
            )
        ).one()
        events = await s.scalar(
            select(func.count()).where(
                AuditEvent.tenant_id == tenant_id,
                AuditEvent.action == AuditAction.MODEL_CALLED.value,
            )
        )
        counted = await s.scalar(
            select(func.coalesce(func.sum(UsageCounter.used_tokens), 0)).where(
                UsageCounter.tenant_id == tenant_id,
                UsageCounter.scope == "tenant",
                UsageCounter.period.like("d%"),
            )
        )
    return int(rows), int(tokens), int(events or 0), int(counted or 0)


async def test_a_burst_of_calls_is_in_the_ledger_soon_without_a_read(
    gw: Api, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    answers = await asyncio.gather(
        *(gw.client.post(CHAT, json=ask(f"question {i}"), headers=tenant.admin) for i in range(12))
    )
    assert [a.status_code for a in answers] == [200] * 12
    billed = sum(a.json()["usage"]["total_tokens"] for a in answers)

    # Nobody reads usage (which would write what is queued): the batch window passes.
    for _ in range(50):
        ledger = await _ledger(runtime, tenant)
        if ledger[0] == 12:
            break
        await asyncio.sleep(0.1)
    assert ledger == (12, billed, 12, billed)
    verified = await gw.client.get("/v1/audit/verify", headers=tenant.admin)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True


async def test_a_replica_shutting_down_writes_the_settlements_it_holds(
    gw: Api, peers: Peers, deployment: Deployment, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    # A window far longer than the test: only the shutdown can have written these.
    slow = create_app(gateway_settings(deployment.settings, peers, settle_batch_seconds=5))
    async with AsyncTestClient(app=slow) as client:
        for i in range(3):
            answer = await client.post(CHAT, json=ask(f"q{i}"), headers=tenant.admin)
            assert answer.status_code == 200, answer.text
        assert (await _ledger(runtime, tenant))[0] == 0  # still queued
    rows, tokens, events, counted = await _ledger(runtime, tenant)
    assert (rows, events) == (3, 3)
    assert tokens == counted > 0


async def test_a_queued_settlement_never_refuses_the_next_call_for_quota(
    gw: Api, peers: Peers, deployment: Deployment, runtime: Runtime
) -> None:
    """A call's reservation is released when its settlement is written. One still queued when
    the next admission finds the quota spent is written then, and the admission tried again:
    room a written settlement would leave is never refused."""
    tenant = await gw.new_tenant("eu")
    # Room for one call's reservation (its input and 250 output tokens), not for two.
    quota = {"tenant": {"day": {"tokens": 400}}}
    put = await gw.client.put("/v1/admin/quotas", json=quota, headers=tenant.admin)
    assert put.status_code == 200, put.text
    slow = create_app(gateway_settings(deployment.settings, peers, settle_batch_seconds=5))
    async with AsyncTestClient(app=slow) as client:
        answers = [
            await client.post(CHAT, json=ask(f"q{i}", max_tokens=250), headers=tenant.admin)
            for i in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
        # Each refusal wrote what was queued: the first two calls are in the ledger already.
        assert (await _ledger(runtime, tenant))[0] == 2
    rows, tokens, events, counted = await _ledger(runtime, tenant)
    assert (rows, events) == (3, 3)
    assert tokens == counted == sum(a.json()["usage"]["total_tokens"] for a in answers)


async def test_a_batch_of_several_callers_records_each_under_their_own_pseudonym(
    gw: Api, runtime: Runtime
) -> None:
    tenant = await gw.new_tenant("eu")
    keys = [(await gw.new_key(tenant, (await gw.new_user(tenant))["id"]))["key"] for _ in range(3)]
    callers = [keys[i % 3] for i in range(9)]
    answers = await asyncio.gather(
        *(
            gw.client.post(CHAT, json=ask(f"q{i}"), headers={"Authorization": f"Bearer {key}"})
            for i, key in enumerate(callers)
        )
    )
    assert [a.status_code for a in answers] == [200] * 9
    calls = {
        uuid.UUID(a.json()["bulwark"]["call_id"]): key
        for a, key in zip(answers, callers, strict=True)
    }
    usage = await gw.client.get("/v1/usage?group_by=day", headers=tenant.admin)  # writes the queue
    assert usage.status_code == 200, usage.text

    async with runtime.registry.tenant_transaction(context_of(tenant), read_only=True) as s:
        rows = (
            await s.execute(
                select(AuditEvent.resource_id, AuditEvent.actor).where(
                    AuditEvent.tenant_id == uuid.UUID(tenant.id),
                    AuditEvent.action == AuditAction.MODEL_CALLED.value,
                )
            )
        ).all()
    actors: dict[str, set[str]] = {}
    for resource_id, actor in rows:
        actors.setdefault(calls[uuid.UUID(resource_id)], set()).add(actor)
    # One pseudonym per caller across all their calls, and no two callers share one.
    assert len(actors) == 3
    assert all(len(seen) == 1 for seen in actors.values())
    assert len(set.union(*actors.values())) == 3
    verified = await gw.client.get("/v1/audit/verify", headers=tenant.admin)
    assert verified.json()["ok"] is True
