"""What one model call is, in the words every part of the gateway shares: the request, who pays
for it (``Caller``), the call as routed and admitted (``PreparedCall``), and the token estimate
that trims a prompt to its budget and sizes the call's quota reservation.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.adapters.base import ModelMessage
from gateway.fleet import Endpoint
from gateway.repositories import CounterCharge
from gateway.router import RouteDecision
from kernel.tenancy import TenantContext

# A conservative token estimate (English runs ~4 characters a token): reservations should not
# undershoot what a provider later reports.
_CHARS_PER_TOKEN = 3
_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    return len(text) // _CHARS_PER_TOKEN + 1


def estimate_messages(messages: Sequence[ModelMessage]) -> int:
    return sum(estimate_tokens(m.content) + _MESSAGE_OVERHEAD for m in messages)


def prompt_hash(messages: Sequence[ModelMessage]) -> str:
    canonical = json.dumps([[m.role, m.content] for m in messages], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def trim(messages: Sequence[ModelMessage], budget: int) -> tuple[list[ModelMessage], int]:
    """Drop the oldest conversation turns (never system messages, never the last message) until
    the estimate fits ``budget``; returns the kept messages and their estimate."""
    kept = list(messages)
    tokens = estimate_messages(kept)
    index = 0
    while tokens > budget and index < len(kept) - 1:
        if kept[index].role == "system":
            index += 1
            continue
        tokens -= estimate_tokens(kept[index].content) + _MESSAGE_OVERHEAD
        del kept[index]
    return kept, tokens


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    messages: tuple[ModelMessage, ...]
    model: str = "auto"  # auto | small | mid | frontier | a configured alias
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    sources: int = 0
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who pays: the user (per-user quotas), the credential (rate limits), the track."""

    user_id: uuid.UUID | None
    credential_id: uuid.UUID | None
    request_id: str | None = None
    track: str = "interactive"  # interactive | batch
    # What asked, for the cost and token metrics: "gateway" (the API), "chat", "batch"...
    route: str = "gateway"

    @classmethod
    def of(
        cls, ctx: TenantContext, request_id: str | None = None, route: str = "gateway"
    ) -> Caller:
        return cls(ctx.user_id, ctx.credential_id, request_id, route=route)


@dataclass(slots=True)
class PreparedCall:
    call_id: uuid.UUID
    messages: list[ModelMessage]
    input_tokens: int
    max_output: int
    decision: RouteDecision
    candidates: list[Endpoint]
    reserved_tokens: int
    reserved_microdollars: int
    charges: list[CounterCharge] = field(default_factory=list)
    # Whether admission left a reservation row (a lease) that settlement must take.
    leased: bool = False
    # BYO endpoints the egress guard refused at call time: (endpoint, reason), audited with
    # the call's settlement.
    refused: list[tuple[str, str]] = field(default_factory=list)
    _prompt_hash: str | None = None

    @property
    def prompt_hash(self) -> str:
        """The prompt's SHA-256 (ledger and audit), computed when first asked for: by the
        settlement, off the request's path."""
        if self._prompt_hash is None:
            self._prompt_hash = prompt_hash(self.messages)
        return self._prompt_hash
