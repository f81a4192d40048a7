"""Deliver: what leaves Bulwark, and in what shape.

- Outbound DLP and the output checks, one sentence at a time (``StreamingOutbound``): a stream
  releases each sentence once it is complete, scanned and passed by the gate
  (``verify.Verifier.sentence``); a JSON answer goes through the same scan (``scan``) before the
  gate judges it, so what is judged is what would be delivered.
- The answer itself: the generative one with its citations (``generative``), the cited
  extractive answer or an abstention when no model may answer or the gate refused it
  (``extractive``), or a fixed text without sources (``abstention``: nothing found, nothing that
  answers, a withheld message).
- The events of a stream (``ChatEvent``): ``meta``, ``token``..., ``citation``..., ``done`` (or
  ``error``); an answer that needed no model is replayed as the same events (``replay``).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry import trace

from chat.schemas import (
    AnswerMode,
    ChatResponse,
    Citation,
    Grounded,
    ModelInfo,
    Usage,
)
from chat.stages.verify import Verifier, scored
from chat.turn import ChatDeps, ChatTurn
from chat.workflows import Generation
from dlp import injection
from dlp.errors import PersonalDataBlocked
from dlp.services import DlpScanner
from dlp.transform import PseudonymVault
from gateway.services import GatewayStream
from kernel.errors import ServiceUnavailable
from retrieval.extractive import Extract, extract, render
from retrieval.grounding import CITATION, Grounding, sentences
from retrieval.prompt import SYSTEM_PROMPT

NOTHING_FOUND = (
    "The documents available to you do not answer this question, so no answer was generated."
)

_tracer = trace.get_tracer("bulwark.chat")


@dataclass(frozen=True, slots=True)
class ChatEvent:
    kind: str  # meta | token | citation | done | error
    payload: Any


def _complete_prefix(pending: str) -> int:
    """How much of ``pending`` is whole sentences (the last one may still grow: a sentence is
    complete once the next has begun, so a trailing citation marker stays with it)."""
    found = sentences(pending)
    if len(found) < 2:
        return 0
    last = r"\s+".join(re.escape(word) for word in found[-1].split())
    match = re.search(rf"{last}\s*$", pending)
    return match.start() if match else 0


class StreamingOutbound:
    """Outbound DLP, output checks and the answer gate on a streamed answer, one sentence at a
    time: a sentence is released once it is complete, scanned (its cited sources and the
    asker's own message are what it may repeat) and backed by what it cites, so nothing
    unscanned or unsupported reaches the client. The first sentence that fails the gate raises
    ``verify.Ungrounded``: it and everything after it are withheld."""

    def __init__(
        self,
        scanner: DlpScanner,
        vault: PseudonymVault | None,
        asker_message: str,
        sources: list[str],
        verifier: Verifier | None = None,
    ) -> None:
        self.scanner = scanner
        self.vault = vault
        self.asker_message = asker_message
        self.sources = sources
        self.verifier = verifier
        self.pending = ""
        self.released: list[str] = []
        self.trips: Counter[tuple[str, str]] = Counter()
        self.output_kinds: Counter[tuple[str, str]] = Counter()

    @property
    def text(self) -> str:
        return "".join(self.released)

    async def feed(self, delta: str) -> str:
        self.pending += delta
        cut = _complete_prefix(self.pending)
        if not cut:
            return ""
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return await self._scan(ready)

    async def flush(self) -> str:
        ready, self.pending = self.pending, ""
        if not ready.strip():
            return ""
        return await self._scan(ready)

    async def _scan(self, piece: str) -> str:
        cited = [
            self.sources[int(n) - 1]
            for n in CITATION.findall(piece)
            if 1 <= int(n) <= len(self.sources)
        ]
        scan, applied = await self.scanner.outbound(
            piece, vault=self.vault, asker_message=self.asker_message, sources=cited
        )
        self.trips.update(applied.trips)
        if applied.blocked:
            raise PersonalDataBlocked(applied.blocked)
        checked = injection.check_output(
            scan.text,
            system_prompt=SYSTEM_PROMPT,
            allowed_hosts=self.scanner.policy.injection.allowed_hosts,
        )
        self.output_kinds.update((kind, "removed") for kind in checked.kinds)
        if self.verifier is not None:
            await self.verifier.sentence(checked.text)
        self.released.append(checked.text)
        return checked.text


async def scan(turn: ChatTurn, text: str) -> StreamingOutbound:
    """``text`` through outbound DLP and the output checks, sentence by sentence as a stream
    is (a blocked entity raises ``PersonalDataBlocked``): its ``text`` is what the gate judges,
    what would be delivered."""
    assert turn.scanner is not None  # set by the guard before any model call
    outbound = StreamingOutbound(turn.scanner, turn.vault, turn.request.message, turn.sources)
    with _tracer.start_as_current_span("dlp.outbound"):
        await outbound.feed(text)
        await outbound.flush()
    return outbound


def citations(turn: ChatTurn, grounding: Grounding) -> list[Citation]:
    found = []
    for n in grounding.cited:
        passage = turn.passages[n - 1]
        found.append(
            Citation(
                n=n,
                document_id=uuid.UUID(passage.document_id),
                title=turn.titles.get(passage.document_id, ""),
                chunk_id=passage.chunk_id,
                quote=" ".join(passage.text.split())[:300],
            )
        )
    return found


def generative(
    turn: ChatTurn, generation: Generation, grounding: Grounding, revisions: int
) -> ChatResponse:
    """The model's answer as the gate judged it (``grounding``: what is delivered)."""
    return ChatResponse(
        answer=grounding.answer,
        citations=citations(turn, grounding),
        session_id=turn.session_id,
        grounded=Grounded(
            grounding.score, grounding.uncited_sentences, grounding.unsupported_sentences
        ),
        usage=Usage(
            generation.input_tokens,
            generation.output_tokens,
            generation.cost_microdollars / 1_000_000,
        ),
        model=ModelInfo(generation.tier, generation.provider, generation.reason),
        cache="miss",
        mode=AnswerMode.GENERATIVE,
        mode_reason=turn.mode_reason,
        revisions=revisions,
    )


async def extractive(
    deps: ChatDeps, turn: ChatTurn, reason: str, *, revisions: int = 0
) -> ChatResponse:
    """The cited sentences that answer the question (``retrieval.extractive``), or an
    abstention when none does. Model calls already paid for (an answer the gate refused)
    are reported in its usage and model fields."""
    extracts = await _extract(deps, turn)
    text = render(extracts) if extracts else NOTHING_FOUND
    grounding = scored(text, turn.sources)
    spent = turn.spent
    return ChatResponse(
        answer=grounding.answer,
        citations=citations(turn, grounding),
        session_id=turn.session_id,
        grounded=Grounded(
            grounding.score, grounding.uncited_sentences, grounding.unsupported_sentences
        ),
        usage=Usage(
            spent.input_tokens if spent else 0,
            spent.output_tokens if spent else 0,
            spent.cost_microdollars / 1_000_000 if spent else 0.0,
        ),
        # The model that was called (and how it was routed, fallbacks included) even when
        # its answer was replaced; ``mode_reason`` says why the answer is extractive.
        model=ModelInfo(
            spent.tier if spent else None,
            spent.provider if spent else None,
            spent.reason if spent else reason,
        ),
        cache="miss",
        mode=AnswerMode.EXTRACTIVE,
        mode_reason=reason,
        revisions=revisions,
    )


async def _extract(deps: ChatDeps, turn: ChatTurn) -> list[Extract]:
    return await asyncio.to_thread(
        extract,
        turn.asked,
        turn.quotable,
        deps.sentence_vectors(),
        contexts=turn.contexts,
    )


def abstention(session_id: uuid.UUID, text: str, reason: str) -> ChatResponse:
    """An answer without sources or a model: ``text`` says why, ``reason`` names it."""
    return ChatResponse(
        answer=text,
        citations=[],
        session_id=session_id,
        grounded=Grounded(1.0, [], []),
        usage=Usage(0, 0, 0.0),
        model=ModelInfo(None, None, reason),
        cache="miss",
        mode=AnswerMode.EXTRACTIVE,
        mode_reason=reason,
    )


# -- the events of a stream ---------------------------------------------------------------


def opening(turn: ChatTurn, opened: GatewayStream) -> ChatEvent:
    """The ``meta`` event of a generative stream: the tier the router picked and why."""
    return ChatEvent(
        "meta",
        {
            "session_id": str(turn.session_id),
            "cache": "miss",
            "mode": str(AnswerMode.GENERATIVE),
            "model": {
                "tier": opened.decision.tier,
                "provider": opened.endpoint,
                "reason": opened.decision.reason,
            },
        },
    )


def token(text: str) -> ChatEvent:
    return ChatEvent("token", {"text": text})


def blocked(refusal: PersonalDataBlocked) -> ChatEvent:
    """The answer holds personal data the tenant's policy blocks: the stream stops here."""
    return ChatEvent("error", {"code": refusal.code, "detail": refusal.detail})


def outage(error: ServiceUnavailable) -> ChatEvent:
    """Something the answer is recorded in (database, KMS) failed after the stream began: the
    stream's ``error`` event in place of the JSON answer's 503 (nothing of the answer was
    recorded; the question may be sent again)."""
    return ChatEvent(
        "error", {"code": error.code, "detail": error.detail, "retry_after": error.retry_after}
    )


def broken(error_code: str | None) -> ChatEvent:
    return ChatEvent(
        "error",
        {
            "code": error_code or "model_error",
            "detail": "The model stream broke off; what was generated was billed.",
        },
    )


def closing(response: ChatResponse) -> list[ChatEvent]:
    """The events after the answer's text: its citations, then ``done`` with the response."""
    return [
        *(ChatEvent("citation", citation) for citation in response.citations),
        ChatEvent("done", response),
    ]


async def replay(response: ChatResponse) -> AsyncIterator[ChatEvent]:
    """An answer that needed no model, as the same events a streamed one produces."""
    yield ChatEvent(
        "meta",
        {
            "session_id": str(response.session_id),
            "cache": response.cache,
            "mode": str(response.mode),
            "model": msgspec.to_builtins(response.model),
        },
    )
    yield token(response.answer)
    for event in closing(response):
        yield event
