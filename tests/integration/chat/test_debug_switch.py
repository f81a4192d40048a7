"""The raw-content debug switch: logs hold keyed hashes of questions and answers unless a tenant
admin turns raw logging on — audited, bounded in time, per tenant, and only where the operator
allows it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from kernel.settings import ObservabilitySettings
from tests.peers.llm_peer import LlmPeer
from tests.support.chat import ANSWER, QUESTION, TRAIN_ANSWER, ask, travel_tenant
from tests.support.deployments import Deployment
from tests.support.documents import member
from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle

SWITCH = "/v1/admin/debug/raw-content"


def raw_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.msg
        for record in caplog.records
        if record.name == "bulwark.debug.raw" and isinstance(record.msg, dict)
    ]


async def actions(api: Api, tenant: TenantHandle) -> list[dict[str, Any]]:
    events = await api.client.get(
        "/v1/audit/events", params={"action": "debug.raw_content_enabled"}, headers=tenant.admin
    )
    assert events.status_code == 200, events.text
    return list(events.json()["items"])


async def test_raw_content_is_logged_only_while_the_audited_switch_is_on(
    chat: Api, peer: LlmPeer, caplog: pytest.LogCaptureFixture
) -> None:
    tenant, _ = await travel_tenant(chat)
    peer.text = ANSWER
    caplog.set_level("INFO")

    await ask(chat, tenant.admin, QUESTION)
    assert raw_lines(caplog) == []
    assert QUESTION not in caplog.text and "180 euros per night" not in caplog.text
    assert (await chat.client.get(SWITCH, headers=tenant.admin)).json()["enabled"] is False

    on = await chat.client.put(
        SWITCH, json={"minutes": 15, "reason": "INC-4411 wrong answers"}, headers=tenant.admin
    )
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True and on.json()["until"]
    [enabled] = await actions(chat, tenant)
    assert enabled["detail"]["minutes"] == 15
    assert "INC-4411" not in json.dumps(enabled)  # the reason is kept as a keyed hash

    caplog.clear()
    peer.text = TRAIN_ANSWER
    await ask(chat, tenant.admin, "Is first class allowed on trains?")
    [line] = raw_lines(caplog)
    assert line["raw_content"] is True
    assert line["question"] == "Is first class allowed on trains?"
    assert line["answer"] == TRAIN_ANSWER

    off = await chat.client.delete(SWITCH, headers=tenant.admin)
    assert off.status_code == 200 and off.json()["enabled"] is False
    disabled = await chat.client.get(
        "/v1/audit/events",
        params={"action": "debug.raw_content_disabled"},
        headers=tenant.admin,
    )
    assert len(disabled.json()["items"]) == 1
    caplog.clear()
    await ask(chat, tenant.admin, "How much for a hotel elsewhere?")
    assert raw_lines(caplog) == []


async def test_the_switch_is_for_tenant_admins_bounded_and_validated(chat: Api) -> None:
    tenant, _ = await travel_tenant(chat)
    _, key = await member(chat, tenant)
    assert_problem(
        await chat.client.put(SWITCH, json={"minutes": 5, "reason": "curious"}, headers=key), 403
    )
    for body in (
        {"minutes": 61, "reason": "too long"},
        {"minutes": 0, "reason": "zero"},
        {"minutes": 5},
        {"minutes": 5, "reason": "x", "extra": 1},
    ):
        assert_problem(await chat.client.put(SWITCH, json=body, headers=tenant.admin), 400)
    assert (await chat.client.get(SWITCH, headers=tenant.admin)).json()["enabled"] is False


async def test_an_operator_who_does_not_allow_it_gets_a_clear_refusal(
    deployment: Deployment,
) -> None:
    settings = deployment.settings.model_copy(
        update={"observability": ObservabilitySettings(judge_sample_rate=0.0)}
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        api = Api(client)
        tenant = await api.new_tenant("eu")
        state = (await client.get(SWITCH, headers=tenant.admin)).json()
        assert state == {"enabled": False, "until": None, "allowed_by_operator": False}
        assert_problem(
            await client.put(SWITCH, json={"minutes": 5, "reason": "INC-1"}, headers=tenant.admin),
            409,
            "raw_content_debug_not_allowed",
        )
