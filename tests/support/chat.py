"""A chat deployment's settings, a tenant with a travel policy to ask about, and the chat API's
answers and event streams."""

from __future__ import annotations

from typing import Any

from kernel.settings import GatewaySettings, RouterSettings, Settings
from tests.peers.llm_peer import LlmPeer
from tests.support.documents import add
from tests.support.gateway import endpoint
from tests.support.tenants import Api, TenantHandle


def chat_settings(base: Settings, eu: LlmPeer, us: LlmPeer) -> Settings:
    regions = dict(base.regions)
    regions["eu"] = regions["eu"].model_copy(
        update={
            "models": tuple(
                endpoint(f"eu-{tier}", tier, eu) for tier in ("small", "mid", "frontier")
            )
        }
    )
    regions["us"] = regions["us"].model_copy(
        update={
            "models": tuple(
                endpoint(f"us-{tier}", tier, us) for tier in ("small", "mid", "frontier")
            )
        }
    )
    gateway = GatewaySettings(
        router=RouterSettings(classifier="none"),
        retry_base_delay_seconds=0.01,
        retries_per_endpoint=0,
        breaker_failures=1000,
    )
    return base.model_copy(update={"regions": regions, "gateway": gateway})


POLICY = """# Travel policy

## Hotels

Employees may book hotels up to 180 euros per night in Paris and 140 euros elsewhere.

## Trains

First class is allowed for journeys longer than four hours.
"""
ANSWER = "Employees may book hotels up to 180 euros per night in Paris [1]."
TRAIN_ANSWER = "First class is allowed for journeys longer than four hours [1]."
QUESTION = "What is the hotel limit per night in Paris?"


async def ask(api: Api, headers: dict[str, str], message: str, **extra: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/v1/chat", json={"message": message, **extra}, headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def travel_tenant(api: Api) -> tuple[TenantHandle, dict[str, Any]]:
    tenant = await api.new_tenant("eu")
    doc = await add(api, tenant, "Travel policy", POLICY, acl={"visibility": "tenant"})
    return tenant, doc


def sse_events(body: str) -> list[tuple[str, Any]]:
    import json

    events = []
    for block in body.strip().split("\n\n"):
        kind, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((kind, json.loads(data) if data.startswith(("{", "[")) else data))
    return events
