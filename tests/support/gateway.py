"""A gateway deployment's model peers and settings, its chat-completions route, and model replies
that are not the protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kernel.settings import GatewaySettings, ModelEndpointSettings, RouterSettings, Settings
from tests.peers.llm_peer import LlmPeer, Reply


@dataclass
class Peers:
    eu_small: LlmPeer
    eu_mid_a: LlmPeer
    eu_mid_b: LlmPeer
    eu_frontier: LlmPeer
    us: LlmPeer
    byo: LlmPeer

    def eu(self) -> list[LlmPeer]:
        return [self.eu_small, self.eu_mid_a, self.eu_mid_b, self.eu_frontier]


def endpoint(name: str, tier: str, peer: LlmPeer, **extra: Any) -> ModelEndpointSettings:
    prices = {"small": (0.1, 0.4), "mid": (0.5, 1.5), "frontier": (3.0, 15.0)}[tier]
    return ModelEndpointSettings(
        name=name,
        tier=tier,  # type: ignore[arg-type]
        base_url=peer.base_url,
        model=f"{name}-model",
        input_price_per_mtok=prices[0],
        output_price_per_mtok=prices[1],
        context_window=32000,
        **extra,
    )


def gateway_settings(base: Settings, peers: Peers, **gateway: Any) -> Settings:
    regions = dict(base.regions)
    regions["eu"] = regions["eu"].model_copy(
        update={
            "models": (
                endpoint("eu-small", "small", peers.eu_small),
                endpoint("eu-mid-a", "mid", peers.eu_mid_a, aliases=("house-mid",)),
                endpoint("eu-mid-b", "mid", peers.eu_mid_b),
                endpoint("eu-frontier", "frontier", peers.eu_frontier, provider="anthropic"),
            )
        }
    )
    regions["us"] = regions["us"].model_copy(
        update={
            "models": tuple(
                endpoint(f"us-{tier}", tier, peers.us) for tier in ("small", "mid", "frontier")
            )
        }
    )
    settings = {
        "router": RouterSettings(classifier="none"),
        "retry_base_delay_seconds": 0.01,
        "breaker_cooldown_seconds": 60.0,
        **gateway,
    }
    return base.model_copy(update={"regions": regions, "gateway": GatewaySettings(**settings)})


CHAT = "/v1/gateway/chat/completions"


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def streamed_text(events: list[tuple[str | None, dict[str, Any] | str]]) -> str:
    """The text of the content deltas of an OpenAI-shaped event stream."""
    return "".join(
        e["choices"][0]["delta"].get("content", "")
        for _, e in events
        if isinstance(e, dict) and e.get("choices")
    )


def sse(text: str) -> list[tuple[str | None, dict[str, Any] | str]]:
    events: list[tuple[str | None, dict[str, Any] | str]] = []
    for block in text.strip().split("\n\n"):
        name, data = None, ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


BROKEN = {
    "truncated": Reply(raw=b'{"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"rol'),
    "empty": Reply(raw=b""),
    "html": Reply(raw=b"<html><body>Sign in to the proxy</body></html>", content_type="text/html"),
    "no_choice": Reply(raw=b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}'),
    "no_content": Reply(
        raw=b'{"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}]}'
    ),
    "bad_usage": Reply(
        raw=b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "many"}}'
    ),
}
