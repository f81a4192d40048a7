"""Gateway API schemas: the OpenAI-compatible chat completion, quotas, policy, BYO, usage."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec

Tier = Literal["small", "mid", "frontier"]
Role = Literal["system", "user", "assistant"]
Content = Annotated[str, msgspec.Meta(max_length=400_000)]


class ChatMessageIn(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    content: Content
    name: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True):
    include_usage: bool = True


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """OpenAI's chat completion request (the subset Bulwark honours). ``model``: a tier, ``auto``
    or a configured alias. ``reasoning_effort`` and ``bulwark_sources`` are routing hints."""

    messages: Annotated[list[ChatMessageIn], msgspec.Meta(min_length=1, max_length=500)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "auto"
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    # Written as floats: ``typing`` caches equal ``Annotated`` forms, and the chat policy's
    # scores (0.0 to 1.0) are equal to this one, so the document's bounds read 0.0 and 1.0
    # whichever is made first.
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    stop: (
        Annotated[str, msgspec.Meta(max_length=64)]
        | Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=4)]
        | None
    ) = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    bulwark_sources: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    user: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class ChatMessageOut(msgspec.Struct):
    role: str
    content: str


class Choice(msgspec.Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str | None


class CompletionUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RouteInfo(msgspec.Struct):
    """Bulwark's extension: which tier served the request, why, and what it cost."""

    tier: str
    route_reason: str
    endpoint: str
    fallbacks: int
    cost_usd: float
    call_id: uuid.UUID


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    bulwark: RouteInfo
    object: str = "chat.completion"


class QuotaLimit(msgspec.Struct, forbid_unknown_fields=True):
    tokens: Annotated[int, msgspec.Meta(ge=0, le=10**15)] | None = None
    usd: Annotated[float, msgspec.Meta(ge=0, le=10**9)] | None = None


class QuotaPeriods(msgspec.Struct, forbid_unknown_fields=True):
    day: QuotaLimit | None = None
    month: QuotaLimit | None = None


class RequestRates(msgspec.Struct, forbid_unknown_fields=True):
    identity_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    tenant_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None


class Quotas(msgspec.Struct, forbid_unknown_fields=True):
    """Token and dollar quotas of the whole tenant and of each of its users, per UTC day and
    month; request-rate limits per identity (API key or user) and per tenant."""

    tenant: QuotaPeriods = msgspec.field(default_factory=QuotaPeriods)
    per_user: QuotaPeriods = msgspec.field(default_factory=QuotaPeriods)
    requests: RequestRates = msgspec.field(default_factory=RequestRates)


def _tier_allowed(tier: str) -> dict[str, Any]:
    """JSON Schema: ``tier`` is allowed (listed in ``allowed``, or no list; not forbidden)."""
    return {
        "properties": {
            "allowed": {
                "anyOf": [{"type": "null"}, {"maxItems": 0}, {"contains": {"const": tier}}]
            },
            "forbidden": {"not": {"type": "array", "contains": {"const": tier}}},
        }
    }


def _names_an_allowed_tier(field: str) -> dict[str, Any]:
    return {
        "allOf": [
            {"anyOf": [{"properties": {field: {"not": {"const": tier}}}}, _tier_allowed(tier)]}
            for tier in get_args(Tier)
        ]
    }


class ModelPolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    """``pinned``: every request uses this tier. ``allowed``/``forbidden`` restrict auto and
    named tiers (no or an empty ``allowed``: every tier). ``fallback``: the tier tried when every
    endpoint of the routed tier fails. The policy allows at least one tier, and the pinned and
    fallback tiers are allowed ones."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "allOf": [
            {"anyOf": [_tier_allowed(tier) for tier in get_args(Tier)]},
            _names_an_allowed_tier("pinned"),
            _names_an_allowed_tier("fallback"),
        ]
    }

    pinned: Tier | None = None
    allowed: list[Tier] | None = None
    forbidden: list[Tier] | None = None
    fallback: Tier | None = None


class ByoModelWrite(msgspec.Struct, forbid_unknown_fields=True):
    provider: Literal["openai", "anthropic"]
    base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[!-~]+$", max_length=512)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    input_price_per_mtok: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 0.0
    output_price_per_mtok: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 0.0
    context_window: Annotated[int, msgspec.Meta(ge=256, le=10_000_000)] = 8192
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 8
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0


class ByoModelRead(msgspec.Struct):
    """A tenant's own model endpoint; the API key is never returned, only whether one is set."""

    tier: str
    provider: str
    base_url: str
    model: str
    has_api_key: bool
    input_price_per_mtok: float
    output_price_per_mtok: float
    context_window: int
    max_concurrency: int
    timeout_seconds: float
    version: int


class ByoModelList(msgspec.Struct):
    items: list[ByoModelRead]


class UsageItem(msgspec.Struct):
    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class UsageReport(msgspec.Struct):
    group_by: str
    since: str
    until: str
    items: list[UsageItem]
    total_cost_usd: float
    total_tokens: int


class BatchRequestItem(msgspec.Struct, forbid_unknown_fields=True):
    messages: Annotated[list[ChatMessageIn], msgspec.Meta(min_length=1, max_length=500)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "auto"
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None


class BatchCreate(msgspec.Struct, forbid_unknown_fields=True):
    requests: Annotated[list[BatchRequestItem], msgspec.Meta(min_length=1, max_length=1000)]


class BatchItemRead(msgspec.Struct):
    position: int
    status: str
    content: str | None = None
    error_code: str | None = None
    tier: str | None = None
    cost_usd: float | None = None


class BatchRead(msgspec.Struct):
    id: uuid.UUID
    status: str
    item_count: int
    items: list[BatchItemRead]
