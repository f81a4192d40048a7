"""A chat answer's model call is admitted in the answer's first writing transaction: quota and
rate-limit refusals as a user sees them, and nothing of a refused admission left behind."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.runtime import Runtime
from gateway.models import Reservation, UsageCounter
from tests.peers.llm_peer import LlmPeer
from tests.support.chat import ANSWER, QUESTION, ask, travel_tenant
from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle, context_of


async def _held(runtime: Runtime, tenant: TenantHandle) -> tuple[int, int]:
    """Tokens reserved across the tenant's counters, and its open reservations."""
    mine = uuid.UUID(tenant.id)
    async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
        reserved = await session.execute(
            select(func.coalesce(func.sum(UsageCounter.reserved_tokens), 0)).where(
                UsageCounter.tenant_id == mine
            )
        )
        leases = await session.execute(
            select(func.count()).select_from(Reservation).where(Reservation.tenant_id == mine)
        )
        return int(reserved.scalar_one()), int(leases.scalar_one())


async def test_an_exhausted_budget_is_answered_without_a_model_and_holds_nothing(
    chat: Api, runtime: Runtime, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    # The tenant's day has room; the user's month does not: the tenant counter is reserved
    # first, then the user's refuses, and the first reservation must not stay behind.
    quotas = {"tenant": {"day": {"tokens": 1_000_000}}, "per_user": {"month": {"tokens": 10}}}
    put = await chat.client.put("/v1/admin/quotas", json=quotas, headers=tenant.admin)
    assert put.status_code == 200, put.text
    peer.text = ANSWER
    answered = await ask(chat, tenant.admin, QUESTION)
    assert (answered["mode"], answered["mode_reason"]) == ("extractive", "budget_exhausted")
    assert "180 euros" in answered["answer"] and answered["usage"]["cost_usd"] == 0
    assert peer.requests == []
    assert await _held(runtime, tenant) == (0, 0)


async def test_a_rate_limited_question_is_refused_and_leaves_no_session(
    chat: Api, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    rates = {"requests": {"identity_per_minute": 1}}
    put = await chat.client.put("/v1/admin/quotas", json=rates, headers=tenant.admin)
    assert put.status_code == 200, put.text
    peer.text = ANSWER
    first = await ask(chat, tenant.admin, QUESTION)
    refused = await chat.client.post(
        "/v1/chat", json={"message": "Is first class allowed?"}, headers=tenant.admin
    )
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    sessions = (await chat.client.get("/v1/chat/sessions", headers=tenant.admin)).json()
    assert [s["id"] for s in sessions["items"]] == [first["session_id"]]
    assert len(peer.requests) == 1
