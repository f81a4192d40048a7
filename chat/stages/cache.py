"""Cache: the tenant's exact, then semantic, answer cache (``retrieval.cache``).

An answer is looked up (``lookup``) and stored (``store``) only when it depends on nothing but
the question: no earlier turns, no personal data of the asker's, and the request allows it. A
hit re-checks each cited document for this asker (in ``SemanticCache``) and is replayed with
this session and no usage. The scope of an entry (``scope``) holds everything else the answer
depends on, the answer gate's version and the tenant's ``min_support`` included: only answers
that passed this gate are served again.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from opentelemetry import trace

from chat.gate import GATE_VERSION
from chat.schemas import ChatPolicyBody, ChatResponse
from chat.turn import ChatDeps, ChatTurn, Unit
from retrieval.cache.services import CachePolicy, SemanticCache

_tracer = trace.get_tracer("bulwark.chat")


def scope(turn: ChatTurn) -> dict[str, Any]:
    request = turn.request
    return {
        "mode": str(turn.mode),
        "top_k": request.top_k,
        "filters": dict(sorted(request.filters.items())),
        "model": request.model,
        # Only answers that passed this gate are served again: entries cached before the
        # answer gate existed, or under a looser policy than the tenant's now, never match.
        "gate": GATE_VERSION,
        "min_support": turn.policy.min_support,
    }


async def lookup(deps: ChatDeps, unit: Unit, turn: ChatTurn) -> ChatResponse | None:
    """The cached answer to this question in this scope, as this session's (no usage), or
    None (a miss, or a question that is not cacheable)."""
    if turn.history or turn.pii_found or not turn.request.cache:
        return None
    cache = await _open(deps, unit, turn.policy)
    with _tracer.start_as_current_span("cache.lookup") as span:
        found = await cache.lookup(turn.question, turn.vector, scope(turn))
        span.set_attribute("bulwark.cache.outcome", found.outcome)
    if found.hit is None:
        return None
    return msgspec.convert(
        {
            **found.hit.answer,
            "session_id": str(turn.session_id),
            "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
            "cache": found.outcome,
        },
        ChatResponse,
    )


async def store(deps: ChatDeps, unit: Unit, turn: ChatTurn, response: ChatResponse) -> None:
    """Keep ``response`` for later askers: only when it cites sources (a hit re-checks each for
    its asker), and when it depends on nothing but the question."""
    cited = {uuid.UUID(str(c.document_id)) for c in response.citations}
    if cited and not turn.history and not turn.pii_found and turn.request.cache:
        answer = _cacheable(response)
        cache = await _open(deps, unit, turn.policy)
        await cache.store(
            turn.question,
            turn.vector,
            scope(turn),
            answer,
            {d: turn.versions[d] for d in cited if d in turn.versions},
        )


async def _open(deps: ChatDeps, unit: Unit, policy: ChatPolicyBody) -> SemanticCache:
    return SemanticCache(
        deps.ctx,
        unit.session,
        unit.keys,
        await deps.knowledge.questions(deps.ctx),
        pepper=deps.secret,
        policy=CachePolicy(
            enabled=policy.cache_enabled,
            threshold=policy.cache_threshold,
            ttl_seconds=policy.cache_ttl_seconds,
        ),
    )


def _cacheable(response: ChatResponse) -> dict[str, Any]:
    """The parts of a response a later hit replays (not the session, usage or cache fields)."""
    body: dict[str, Any] = msgspec.to_builtins(response)
    for key in ("session_id", "usage", "cache"):
        body.pop(key, None)
    return body
