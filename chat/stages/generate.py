"""Generate: the model's answer through the gateway, within the tier's time budget.

- ``admit``: the prompt (the question, the numbered sources fitted to the room of the models
  it may go to, the earlier turns) and its first call routed and admitted (rate limits, quota
  reservation) in the request's first writing transaction;
- ``answer`` (JSON): one call; what it says goes through outbound DLP (``deliver.scan``) and the
  answer gate (``verify``); a refusal gets one revision that names the failing sentences
  (``revise``), then the answer is extractive. A quota refusal, an unavailable model, a
  question too long for it or the time budget make it extractive too, without a model;
- ``open_stream`` and ``Relay`` (SSE): the stream opened before the response starts (so that
  its failures are ordinary problem responses), then its deltas released sentence by sentence
  as outbound DLP and the gate pass them (``deliver.StreamingOutbound``).

Model calls of the JSON path are settled by the caller (``settle="caller"``): the pipeline
records them with the answer (``record.settle``). No transaction is open while a model
generates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace

from chat.schemas import AnswerMode
from chat.stages import deliver, verify
from chat.stages.deliver import ChatEvent, StreamingOutbound
from chat.stages.verify import Ungrounded, Verifier
from chat.turn import ChatDeps, ChatTurn, Unit
from chat.workflows import Generation, add_usage
from dlp.errors import PersonalDataBlocked
from gateway.adapters.base import ModelMessage, TokenUsage
from gateway.errors import (
    InputTooLong,
    ModelProviderRejected,
    ModelUnavailable,
    QuotaExhausted,
)
from gateway.services import GatewayRequest, GatewayStream, estimate_tokens
from gateway.services import PreparedCall as Admission
from retrieval.grounding import Grounding
from retrieval.prompt import PromptBudget, Source, Turn, compose

# Tokens kept free for a generative answer (the gateway's ``max_tokens`` of every chat call).
ANSWER_TOKENS = 400
# The failures of a model call (or of its time budget) after which the answer is extractive
# (``mode_reason`` says why).
FAILURES = (ModelUnavailable, ModelProviderRejected, QuotaExhausted, InputTooLong, TimeoutError)

_tracer = trace.get_tracer("bulwark.chat")
T = TypeVar("T")


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, QuotaExhausted):
        return "budget_exhausted"
    if isinstance(exc, TimeoutError):
        return "model_timeout"
    if isinstance(exc, InputTooLong):
        return "question_too_long_for_model"
    return "model_unavailable"


@dataclass(frozen=True, slots=True)
class Draft:
    """A generative answer and the gate's judgement of it as delivered: ``outbound.text``,
    the model's text as outbound DLP and the output checks left it, with their trips."""

    generation: Generation
    grounding: Grounding
    outbound: StreamingOutbound


@dataclass(frozen=True, slots=True)
class Generated:
    """What generation came to: a draft to deliver, or None (the answer is extractive;
    ``ChatTurn.mode_reason`` says why), after ``revisions`` revisions."""

    draft: Draft | None
    revisions: int


# -- the prompt and the gateway -----------------------------------------------------------


def messages(deps: ChatDeps, turn: ChatTurn, *, reserve: int = 0) -> list[dict[str, str]]:
    """The prompt, fitted to the room of the models it may go to, less ``reserve`` tokens
    for what follows it (a revision's previous answer and critique)."""
    with _tracer.start_as_current_span("compose_prompt") as span:
        composed = _compose(deps, turn, reserve)
        span.set_attribute("bulwark.prompt.sources", len(turn.passages))
        return composed


def _compose(deps: ChatDeps, turn: ChatTurn, reserve: int = 0) -> list[dict[str, str]]:
    sources = [
        Source(turn.titles.get(p.document_id, ""), p.heading_path, p.text) for p in turn.passages
    ]
    fit = PromptBudget(turn.room - reserve, estimate_tokens) if turn.room is not None else None
    return compose(
        turn.question,
        sources,
        [Turn(m["role"], m["content"]) for m in turn.history],
        history_budget=turn.policy.history_tokens,
        counter=deps.knowledge.counter,
        fit=fit,
    )


def _request(turn: ChatTurn, prompt: list[dict[str, str]], model: str) -> GatewayRequest:
    """A chat call: its routing hints are the number of sources and, for the reduce step of a
    fanned-out question, "high" reasoning."""
    return GatewayRequest(
        messages=tuple(ModelMessage(m["role"], m["content"]) for m in prompt),
        model=model,
        max_tokens=ANSWER_TOKENS,
        sources=len(turn.passages),
        reasoning=turn.reasoning,
    )


async def room(deps: ChatDeps, turn: ChatTurn) -> int:
    """Tokens of prompt the models this answer may go to can take."""
    return await deps.gateway.prompt_room(deps.ctx, turn.request.model, ANSWER_TOKENS)


async def admit(deps: ChatDeps, unit: Unit, turn: ChatTurn) -> None:
    """Route and admit the answer's first model call (rate limits, quota reservation) in
    this writing transaction rather than one of its own; a quota refusal is answered
    without a model (``answer``), a rate-limit refusal rolls the request back (429)."""
    turn.messages = messages(deps, turn)
    try:
        turn.admitted = await deps.gateway.reserve(
            unit.session,
            deps.ctx,
            _request(turn, turn.messages, turn.request.model),
            deps.caller(),
        )
    except QuotaExhausted:
        turn.exhausted = True
    except InputTooLong:
        # Only the question itself can be too long now that the sources are fitted.
        turn.exhausted, turn.mode_reason = True, "question_too_long_for_model"


def _budget(turn: ChatTurn, tier: str | None) -> float:
    """The tier's time budget for this answer, from now: the revision gets what is left."""
    seconds = turn.policy.time_budget.of(tier)
    turn.deadline = time.monotonic() + seconds
    return seconds


def _genai(span: Any, tier: str, provider: str, model: str, usage: Any) -> None:
    """OpenTelemetry GenAI semantic-convention attributes of one model call (no text)."""
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.system", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.response.model", model)
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens if usage else 0)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens if usage else 0)
    span.set_attribute("bulwark.tier", tier)


async def _call(
    deps: ChatDeps,
    turn: ChatTurn,
    prompt: list[dict[str, str]],
    *,
    model: str,
    admitted: Admission | None = None,
    seconds: float | None = None,
) -> Generation:
    """One model call, within ``seconds`` (the tier's time budget) when given. The ledger and
    audit of the call are written with the answer (``record.settle``)."""
    with _tracer.start_as_current_span("llm.generate") as span:
        async with asyncio.timeout(seconds):
            result = await deps.gateway.complete(
                deps.ctx,
                _request(turn, prompt, model),
                deps.caller(),
                settle="caller",
                admitted=admitted,
            )
        if result.pending is not None:
            turn.unsettled.append(result.pending)
        _genai(span, result.decision.tier, result.endpoint, result.model, result.usage)
        span.set_attribute("bulwark.cost_usd", result.cost_microdollars / 1_000_000)
    return Generation(
        text=result.text,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_microdollars=result.cost_microdollars,
        tier=result.decision.tier,
        provider=result.endpoint,
        reason=result.decision.reason + ("+fallback" if result.fallbacks else ""),
    )


# -- the JSON answer ----------------------------------------------------------------------


async def answer(deps: ChatDeps, turn: ChatTurn) -> Generated:
    """The model's answer if it passes the gate (after at most one revision); else no draft
    and the reason in ``turn.mode_reason``: the answer is then extractive."""
    prompt = turn.messages or messages(deps, turn)
    if turn.exhausted:
        turn.mode = AnswerMode.EXTRACTIVE
        if turn.mode_reason != "question_too_long_for_model":
            turn.mode_reason = "budget_exhausted"
        return Generated(None, 0)
    tier = turn.admitted.decision.tier if turn.admitted is not None else None
    try:
        first = await _call(
            deps,
            turn,
            prompt,
            model=turn.request.model,
            admitted=turn.admitted,
            seconds=_budget(turn, tier),
        )
    except FAILURES as exc:
        turn.mode = AnswerMode.EXTRACTIVE
        turn.mode_reason = failure_reason(exc)
        return Generated(None, 0)
    verifier = Verifier(deps, turn)
    outbound = await deliver.scan(turn, first.text)
    grounding = await verifier.judged(outbound.text)
    if verifier.passes(grounding):
        verify.outcome("passed")
        return Generated(Draft(first, grounding, outbound), 0)
    verify.refused(grounding)
    return await revise(deps, turn, first, grounding)


async def revise(
    deps: ChatDeps, turn: ChatTurn, first: Generation, grounding: Grounding
) -> Generated:
    """A first answer failed the gate: one revision naming its failing sentences, checked
    the same way; if that fails too (or is not allowed, or the model fails), no draft."""
    policy, verifier = turn.policy, Verifier(deps, turn)
    spent, revisions = first, 0
    left = turn.deadline - time.monotonic() if turn.deadline else None
    if policy.revise_below > 0 and policy.max_revisions > 0 and (left is None or left > 0):
        request = verify.critique(grounding)
        # The revision carries the first answer and the critique: the sources make room.
        reserve = estimate_tokens(first.text) + estimate_tokens(request) + 16
        revision = [
            *messages(deps, turn, reserve=reserve),
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": request},
        ]
        try:
            attempt = await _call(deps, turn, revision, model=first.tier, seconds=left)
        except FAILURES:
            attempt = None
        if attempt is not None:
            revisions = 1
            spent = add_usage(first, attempt)
            outbound = await deliver.scan(turn, attempt.text)
            revised = await verifier.judged(outbound.text)
            if verifier.passes(revised):
                verify.outcome("revised")
                return Generated(Draft(spent, revised, outbound), revisions)
            verify.refused(revised)
    verify.outcome("fallback")
    turn.mode = AnswerMode.EXTRACTIVE
    turn.mode_reason = "ungrounded_generation"
    turn.spent = spent
    return Generated(None, revisions)


# -- the stream ---------------------------------------------------------------------------


async def open_stream(deps: ChatDeps, turn: ChatTurn) -> GatewayStream:
    """The model's stream, routed and admitted: within the longest of the tiers' budgets until
    the router has picked the tier, then within that tier's (``turn.deadline``)."""
    started = time.monotonic()
    async with asyncio.timeout(turn.policy.time_budget.of(None)):
        opened = await deps.gateway.stream(
            deps.ctx, _request(turn, messages(deps, turn), turn.request.model), deps.caller()
        )
    turn.deadline = started + turn.policy.time_budget.of(opened.decision.tier)
    return opened


async def _until(events: AsyncIterator[T], deadline: float) -> AsyncIterator[T]:
    """``events`` until the monotonic ``deadline`` (then ``TimeoutError``). Only the wait for
    the next event is timed: a timeout around a ``yield`` would fire in whatever the consumer
    is doing meanwhile (writing the response) and cancel that instead."""
    iterator = aiter(events)
    while True:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                item = await anext(iterator)
        except StopAsyncIteration:
            return
        yield item


class Relay:
    """The model's stream as ``token`` events: each delta through outbound DLP, the output
    checks and the gate, sentence by sentence (``StreamingOutbound``), until the tier's time
    budget runs out. After ``events``: ``stopped`` when an ``error`` event ended the stream
    (a broken model stream, or personal data the policy blocks), else ``refused`` (the gate's
    judgement of the first sentence it withheld) or ``timed_out`` say why it ended early, and
    ``generation`` is what was released."""

    def __init__(self, turn: ChatTurn, opened: GatewayStream, verifier: Verifier) -> None:
        assert turn.scanner is not None  # set by the guard before any model call
        assert turn.deadline is not None  # set when the stream was opened
        self.opened = opened
        self.deadline = turn.deadline
        self.outbound = StreamingOutbound(
            turn.scanner, turn.vault, turn.request.message, turn.sources, verifier
        )
        self.usage: TokenUsage | None = None
        self.cost = 0
        self.stopped = False
        self.refused: Grounding | None = None
        self.timed_out = False

    async def events(self) -> AsyncGenerator[ChatEvent, None]:
        opened, outbound = self.opened, self.outbound
        events = opened.events
        span = _tracer.start_span("llm.generate")
        try:
            async for event in _until(events, self.deadline):
                if event.kind == "delta":
                    released = await outbound.feed(event.text)
                    if released:
                        yield deliver.token(released)
                elif event.kind == "error":
                    self.stopped = True
                    yield deliver.broken(event.error_code)
                    return
                else:
                    self.usage, self.cost = event.usage, event.cost_microdollars
            released = await outbound.flush()
        except PersonalDataBlocked as blocked:
            # The answer holds personal data the tenant's policy blocks: stop here. What was
            # released so far had passed its scan; the call is still settled by the gateway.
            self.stopped = True
            yield deliver.blocked(blocked)
            return
        except Ungrounded as failed:
            self.refused, released = failed.failing, ""
        except TimeoutError:
            self.timed_out, released = True, ""
        finally:
            # Closing the model stream settles the call even when the client went away.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            _genai(span, opened.decision.tier, opened.endpoint, opened.model, self.usage)
            span.set_attribute("bulwark.cost_usd", self.cost / 1_000_000)
            span.end()
        if released:
            yield deliver.token(released)

    @property
    def generation(self) -> Generation:
        usage, opened = self.usage, self.opened
        return Generation(
            text=self.outbound.text,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cost_microdollars=self.cost,
            tier=opened.decision.tier,
            provider=opened.endpoint,
            reason=opened.decision.reason,
        )
