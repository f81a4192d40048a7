"""The database failing as an answer is recorded (its closing transaction does not commit): the
asker gets a clear 503 (a stream, an ``error`` event), nothing of the answer is stored, and
every model call the answer paid for still reaches the usage ledger, so budgets and the
tenant's bill stay true."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from chat.stages import record
from chat.turn import ChatDeps, ChatTurn, Unit
from residency.errors import DatabaseUnavailable
from tests.peers.llm_peer import LlmPeer, Reply
from tests.support.chat import sse_events
from tests.support.documents import add
from tests.support.http import assert_problem
from tests.support.tenants import Api

POLICY = """# Travel policy

## Hotels

Hotels up to 180 euros a night in Paris.

## Meals

Meals are reimbursed up to 40 euros a day. Alcohol is never reimbursed.
"""
HOTEL = "What is the hotel limit per night in Paris?"


@pytest.fixture
def closing_fails(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next transaction that records an answer's model calls fails as it commits (rolled
    back: the database went away). Returns the failures injected."""
    failed: list[int] = []
    settling: list[bool] = []
    writing, settle = ChatDeps.writing, record.settle

    async def marked(deps: ChatDeps, unit: Unit, turn: ChatTurn) -> None:
        settling.append(True)
        await settle(deps, unit, turn)

    @asynccontextmanager
    async def failing(self: ChatDeps) -> AsyncIterator[Unit]:
        async with writing(self) as unit:
            yield unit
            if settling and not failed:
                failed.append(1)
                raise DatabaseUnavailable("eu")

    monkeypatch.setattr(record, "settle", marked)
    monkeypatch.setattr(ChatDeps, "writing", failing)
    return failed


async def _tenant(api: Api) -> Any:
    tenant = await api.new_tenant("eu")
    await add(api, tenant, "Travel policy", POLICY, acl={"visibility": "tenant"})
    return tenant


async def _calls(api: Api, tenant: Any) -> int:
    """Model calls in the tenant's usage ledger (the read waits for pending settlements)."""
    usage = await api.client.get("/v1/usage", params={"group_by": "model"}, headers=tenant.admin)
    assert usage.status_code == 200, usage.text
    return sum(item["calls"] for item in usage.json()["items"])


async def _answers(api: Api, tenant: Any) -> int:
    events = await api.client.get(
        "/v1/audit/events", params={"action": "chat.answered"}, headers=tenant.admin
    )
    assert events.status_code == 200, events.text
    return len(events.json()["items"])


async def test_an_outage_recording_a_fallback_answer_is_a_503_and_its_calls_are_billed(
    chat: Api, peer: LlmPeer, closing_fails: list[int]
) -> None:
    tenant = await _tenant(chat)
    # Two paid calls that fail the gate: the answer falls back to the cited extract.
    peer.then(
        Reply(text="The hotel limit per night in Paris is 120 euros [1]."),
        Reply(text="Paris hotels are capped at 150 euros [1]."),
    )
    response = await chat.client.post(
        "/v1/chat", json={"message": HOTEL, "cache": False}, headers=tenant.admin
    )
    assert closing_fails == [1]
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["Retry-After"]
    assert await _answers(chat, tenant) == 0  # nothing of the answer was recorded
    assert await _calls(chat, tenant) == 2  # both model calls were settled all the same

    # The state is intact: the same question, asked again, is answered and recorded.
    peer.then(Reply(text="Hotels in Paris are reimbursed up to 180 euros a night [1]."))
    again = await chat.client.post(
        "/v1/chat", json={"message": HOTEL, "cache": False}, headers=tenant.admin
    )
    assert again.status_code == 200, again.text
    assert "180 euros" in again.json()["answer"]
    assert await _answers(chat, tenant) == 1
    assert await _calls(chat, tenant) == 3


async def test_an_outage_recording_a_streamed_answer_ends_it_with_an_error_event(
    chat: Api, peer: LlmPeer, closing_fails: list[int]
) -> None:
    tenant = await _tenant(chat)
    # The streamed first sentence fails the gate, nothing was sent: one paid revision.
    peer.then(
        Reply(text="The meal allowance is 10 euros per day [1]."),
        Reply(text="Meals are reimbursed up to 40 euros a day [1]."),
    )
    response = await chat.client.post(
        "/v1/chat",
        json={"message": "What is the meal allowance per day?", "cache": False},
        headers={**tenant.admin, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200, response.text
    assert closing_fails == [1]
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert "done" not in kinds and "10 euros" not in response.text
    kind, error = events[-1]
    assert kind == "error" and error["code"] == "database_unavailable"
    assert error["retry_after"] >= 1
    assert await _answers(chat, tenant) == 0
    # The stream's own call and the revision's are both in the ledger.
    assert await _calls(chat, tenant) == 2
