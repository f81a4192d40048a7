"""A tenant's configuration, kept in memory under its epoch, never outlives a change; a chat
answer's model call is in the ledger when the answer is.

Replica A is the chat suite's app; replica B is a second app over the same databases with its
own caches. Each test makes B serve (and so cache) the tenant's configuration, changes it through
A (or, once, in plain SQL that no Bulwark service sees), and expects B's very next request to
follow the change.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from app.main import create_app
from app.runtime import Runtime
from chat.models import ChatPolicyRow, ChatSession
from gateway.models import UsageRecord
from keys import envelope
from tests.peers.llm_peer import LlmPeer
from tests.support.chat import ANSWER, QUESTION, ask, chat_settings, travel_tenant
from tests.support.deployments import Deployment
from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle, context_of

CARD = "4111 1111 1111 1111"


@pytest.fixture
async def replica(deployment: Deployment, model: tuple[LlmPeer, LlmPeer]) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(chat_settings(deployment.settings, *model))) as b:
        yield Api(b)


async def _served_by(replica: Api, tenant: TenantHandle, message: str = QUESTION) -> Any:
    return await ask(replica, tenant.admin, message, cache=False)


async def test_a_chat_policy_change_reaches_the_next_answer_on_another_replica(
    chat: Api, replica: Api, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    for _ in range(2):  # cached on B after the first
        assert (await _served_by(replica, tenant))["mode"] == "generative"
    put = await chat.client.put("/v1/admin/chat", json={"mode": "extractive"}, headers=tenant.admin)
    assert put.status_code == 200, put.text
    answered = await _served_by(replica, tenant)
    assert (answered["mode"], answered["mode_reason"]) == ("extractive", "tenant_policy")


async def test_a_chat_policy_changed_in_plain_sql_still_reaches_the_next_answer(
    chat: Api, replica: Api, runtime: Runtime, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    put = await chat.client.put("/v1/admin/chat", json={"mode": "extractive"}, headers=tenant.admin)
    assert put.status_code == 200, put.text
    assert (await _served_by(replica, tenant))["mode"] == "extractive"
    async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
        mine = ChatPolicyRow.tenant_id == uuid.UUID(tenant.id)
        row = (await session.execute(select(ChatPolicyRow).where(mine))).scalar_one()
        await session.execute(
            update(ChatPolicyRow).where(mine).values(policy={**row.policy, "mode": "generative"})
        )
    peer.text = ANSWER
    assert (await _served_by(replica, tenant))["mode"] == "generative"


async def test_a_dlp_policy_change_reaches_the_next_question_on_another_replica(
    chat: Api, replica: Api, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    question = f"What is the hotel limit per night in Paris for card {CARD}?"
    assert (await _served_by(replica, tenant, question))["mode"] == "generative"
    policy = {"entities": [{"type": "CREDIT_CARD", "inbound": "block"}]}
    put = await chat.client.put("/v1/admin/dlp", json=policy, headers=tenant.admin)
    assert put.status_code == 200, put.text
    refused = await replica.client.post(
        "/v1/chat", json={"message": question, "cache": False}, headers=tenant.admin
    )
    assert assert_problem(refused, 422, "personal_data_blocked")["entity_types"] == ["CREDIT_CARD"]


async def test_a_model_policy_change_reaches_the_next_call_on_another_replica(
    chat: Api, replica: Api
) -> None:
    tenant = await chat.new_tenant("eu")
    body = {"model": "frontier", "messages": [{"role": "user", "content": "hi"}]}

    async def tier() -> str:
        response = await replica.client.post(
            "/v1/gateway/chat/completions", json=body, headers=tenant.admin
        )
        assert response.status_code == 200, response.text
        return str(response.json()["bulwark"]["tier"])

    assert [await tier(), await tier()] == ["frontier", "frontier"]
    pinned = await chat.client.put(
        "/v1/admin/model-policy", json={"pinned": "small"}, headers=tenant.admin
    )
    assert pinned.status_code == 200, pinned.text
    assert await tier() == "small"


async def test_a_key_rotation_reaches_the_next_write_on_another_replica(
    chat: Api, replica: Api, runtime: Runtime, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    before = await _served_by(replica, tenant)
    rotated = await chat.client.post("/v1/admin/kms/rotate", headers=tenant.admin)
    assert rotated.status_code == 200 and rotated.json()["config"]["current_version"] == 2
    after = await _served_by(replica, tenant)

    async def sealed_with(session_id: str) -> int:
        async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
            row = await session.get(ChatSession, uuid.UUID(session_id))
            assert row is not None
            return envelope.header_version(row.sealed_title)

    assert await sealed_with(before["session_id"]) == 1
    assert await sealed_with(after["session_id"]) == 2


async def _calls_in_ledger(runtime: Runtime, tenant: TenantHandle) -> int:
    async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
        return int(
            (
                await session.execute(
                    select(func.count()).where(UsageRecord.tenant_id == uuid.UUID(tenant.id))
                )
            ).scalar_one()
        )


async def test_an_answer_and_its_model_call_are_recorded_together(
    chat: Api, runtime: Runtime, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    await ask(chat, tenant.admin, QUESTION)
    # No wait for background settlements: the call was settled in the answer's transaction.
    assert await _calls_in_ledger(runtime, tenant) == 1


async def test_a_model_call_is_settled_even_when_its_answer_is_refused(
    chat: Api, peer: LlmPeer
) -> None:
    """The answer's transaction rolls back (outbound DLP blocks it): the call it made is
    settled apart, once."""
    tenant, _ = await travel_tenant(chat)
    policy = {"entities": [{"type": "EMAIL_ADDRESS", "inbound": "allow", "outbound": "block"}]}
    put = await chat.client.put("/v1/admin/dlp", json=policy, headers=tenant.admin)
    assert put.status_code == 200, put.text
    peer.text = ANSWER + " Write to leak.target@example.org for more."
    refused = await chat.client.post("/v1/chat", json={"message": QUESTION}, headers=tenant.admin)
    assert_problem(refused, 422, "personal_data_blocked")
    usage = (await chat.client.get("/v1/usage", headers=tenant.admin)).json()
    assert [item["calls"] for item in usage["items"]] == [1] and usage["total_tokens"] > 0
