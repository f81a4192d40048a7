"""Chat request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from gateway.schemas import (
    ChatCompletionRequest,
    ChatMessageIn,
    ChatMessageOut,
    CompletionUsage,
)
from kernel.fields import TEXT
from retrieval.cache.services import CACHE_THRESHOLD
from retrieval.schemas import Filters

Message = Annotated[str, msgspec.Meta(min_length=1, max_length=8000, pattern=TEXT)]
# A character that is not white space or a control character: what makes a message a question.
VISIBLE_CHARACTER = r"[^\x00-\x20\x7f-\x9f]"
ModelName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:/-]{1,100}$")]


class AnswerMode(StrEnum):
    GENERATIVE = "generative"
    EXTRACTIVE = "extractive"


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    message: Message
    session_id: uuid.UUID | None = None
    top_k: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    # Metadata equality filters: they only ever narrow what the asker may read.
    filters: Filters = msgspec.field(default_factory=dict)
    # None: the tenant's policy decides (generative unless the tenant wants no model).
    mode: AnswerMode | None = None
    # A tier (small, mid, frontier), ``auto`` (the router decides) or a configured alias.
    model: ModelName = "auto"
    # Multi-part questions retrieved per part (fan-out); None: the tenant's policy.
    parallel: bool | None = None
    # False: neither served from nor stored in the semantic cache (evaluations, debugging).
    cache: bool = True


class Citation(msgspec.Struct):
    n: int
    document_id: uuid.UUID
    title: str
    chunk_id: str
    quote: str


class Grounded(msgspec.Struct):
    score: float
    uncited_sentences: list[str]
    unsupported_sentences: list[str]


class Usage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    cost_usd: float


class ModelInfo(msgspec.Struct):
    tier: str | None
    provider: str | None
    reason: str


class ChatResponse(msgspec.Struct):
    answer: str
    citations: list[Citation]
    session_id: uuid.UUID
    grounded: Grounded
    usage: Usage
    model: ModelInfo
    cache: Literal["exact", "semantic", "miss"]
    mode: AnswerMode
    # Why this mode answered (e.g. "tenant_policy", "no_sources", "model_unavailable").
    mode_reason: str
    revisions: int = 0


class ChatSessionRead(msgspec.Struct):
    id: uuid.UUID
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime


class ChatSessionList(msgspec.Struct):
    items: list[ChatSessionRead]
    total: int


class ChatMessageRead(msgspec.Struct):
    id: uuid.UUID
    role: str
    content: str
    citations: list[dict[str, str | int]]
    created_at: datetime


class ChatTranscript(msgspec.Struct):
    session: ChatSessionRead
    messages: list[ChatMessageRead]


class RagCompletionRequest(ChatCompletionRequest, forbid_unknown_fields=True):
    """OpenAI's chat completion request, answered with RAG: the question is the last user
    message with visible text, the messages before it are the conversation so far."""

    messages: Annotated[
        list[ChatMessageIn],
        msgspec.Meta(
            min_length=1,
            max_length=500,
            extra_json_schema={
                "extra": {
                    "contains": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"const": "user"},
                            "content": {"type": "string", "pattern": VISIBLE_CHARACTER},
                        },
                    }
                }
            },
        ),
    ]


class TierTimeBudget(msgspec.Struct, forbid_unknown_fields=True):
    """Seconds a tier may take to answer before the answer falls back to extraction
    (``mode_reason: "model_timeout"``); revisions get what the first call left."""

    small: Annotated[float, msgspec.Meta(gt=0, le=120)] = 20.0
    mid: Annotated[float, msgspec.Meta(gt=0, le=120)] = 60.0
    frontier: Annotated[float, msgspec.Meta(gt=0, le=120)] = 60.0

    def of(self, tier: str | None) -> float:
        return (
            float(getattr(self, tier))
            if tier in ("small", "mid", "frontier")
            else max(self.small, self.mid, self.frontier)
        )


class ChatPolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    """A tenant's chat policy (``PUT/GET /v1/admin/chat``)."""

    # None: the deployment decides — generative when the tenant's region has a model tier an
    # operator configured (or the tenant's own BYO model), extractive when its only model is the
    # embedded small one, which ``bench/answers.py`` measured below extractive answers.
    mode: AnswerMode | None = None
    cache_enabled: bool = True
    cache_threshold: Annotated[float, msgspec.Meta(ge=0.8, le=1.0)] = CACHE_THRESHOLD
    cache_ttl_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)] = 86400
    # The answer gate (chat/gate.py): when a factual sentence of a generative answer is
    # not backed by the source it cites, one revision naming it is asked for, unless
    # ``revise_below`` or ``max_revisions`` is 0; if the revision fails the gate too, the answer
    # is the cited extractive one. (At most one revision; 2 is accepted as 1 for old policies.)
    revise_below: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    max_revisions: Annotated[int, msgspec.Meta(ge=0, le=2)] = 1
    # Share of a sentence's content words its cited text must hold: a tenant may only tighten
    # the gate (0.6 is Bulwark's own threshold).
    min_support: Annotated[float, msgspec.Meta(ge=0.6, le=1.0)] = 0.6
    time_budget: TierTimeBudget = msgspec.field(default_factory=TierTimeBudget)
    parallel: bool = False
    # When the closest chunk the asker may read is less similar than this (cosine of the
    # question's and the chunk's embeddings), nothing relevant was found: the answer says so
    # without a model call. MiniLM scores in-domain questions 0.36+ against their best chunk and
    # unrelated ones 0.0-0.3.
    min_relevance: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.3
    history_tokens: Annotated[int, msgspec.Meta(ge=0, le=8000)] = 1500


class RagChoice(msgspec.Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str | None


class ChatCompletionWithSources(msgspec.Struct):
    """OpenAI's chat completion, with Bulwark's answer summary (citations, groundedness, cache,
    tier, cost) in the ``bulwark`` extension field."""

    id: str
    created: int
    model: str
    choices: list[RagChoice]
    usage: CompletionUsage
    bulwark: ChatResponse
    object: str = "chat.completion"


class ModelRead(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelRead]
    object: str = "list"
