"""The provider port: what the gateway asks of any model endpoint, and how endpoints fail.

Adapters (OpenAI-compatible HTTP, Anthropic Messages, llama.cpp in process) translate between
this small interface and one vendor protocol. They classify every failure into a
``ProviderError`` whose ``kind`` tells the gateway whether to retry, fall back or give up; they
never log prompt or completion text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from opentelemetry import propagate

FailureKind = Literal[
    "rate_limited",  # 429
    "server_error",  # 5xx, or an overload event in a stream
    "timeout",
    "connect",
    "bad_response",  # not the protocol we speak (unparseable body)
    "rejected",  # another 4xx: the endpoint refuses this request or our credential
]
# Failures after which the next endpoint (and then the fallback tier) is tried.
FALLBACK_KINDS: frozenset[str] = frozenset(
    {"rate_limited", "server_error", "timeout", "connect", "bad_response"}
)


@dataclass(frozen=True, slots=True)
class ModelMessage:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    model: str
    messages: tuple[ModelMessage, ...]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str | None
    usage: TokenUsage | None  # None when the provider did not report it (the gateway estimates)


@dataclass(frozen=True, slots=True)
class Delta:
    """One streamed piece: text, and on the last piece(s) the finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage | None = None


# The detail of a ProviderError for a destination the egress guard refused: this, then why.
EGRESS_REFUSED_PREFIX = "egress_refused:"


class ProviderError(Exception):
    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after

    @property
    def falls_back(self) -> bool:
        return self.kind in FALLBACK_KINDS


class ChatProvider(Protocol):
    async def complete(self, request: ProviderRequest) -> Completion: ...

    def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 allows an HTTP date too; treated as unknown here)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def failure_of_status(status: int, retry_after: str | None, what: str) -> ProviderError:
    if status == 429:
        return ProviderError(
            "rate_limited", what, status=status, retry_after=parse_retry_after(retry_after)
        )
    if status >= 500:
        return ProviderError(
            "server_error", what, status=status, retry_after=parse_retry_after(retry_after)
        )
    return ProviderError("rejected", what, status=status)


def traced(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``): a provider that traces
    continues the caller's trace; nothing else about the request is added."""
    carrier = dict(headers)
    propagate.inject(carrier)
    return carrier
