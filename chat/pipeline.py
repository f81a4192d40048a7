"""One grounded answer, top to bottom (docs/ARCHITECTURE.md, "The path of a chat request").

The stages, in order, each a module of ``chat.stages`` over one ``ChatTurn``:

1. guard — the injection guard, then inbound DLP (redaction, pseudonymisation), on the message
   and on the caller's earlier turns; the mode that answers (``stages/guard.py``);
2. cache — the exact, then the semantic cache: a hit is the answer (``stages/cache.py``);
3. retrieve — hybrid search with the ABAC filter inside the vector query (fan-out for
   multi-part questions, per policy), the injection guard on the retrieved chunks, and the
   evidence test: abstain without a model when nothing answers (``stages/retrieve.py``);
4. generate — the prompt fitted to the model's window, the gateway (routing, admission,
   fallback, budgets, the tier's time budget), one revision when the gate refuses
   (``stages/generate.py``);
5. verify — the answer gate, sentence by sentence: the one place that judges groundedness
   (``stages/verify.py``);
6. deliver — outbound DLP and the output checks sentence by sentence, then the generative answer
   with its citations, the cited extractive answer, or an abstention; a stream's events
   (``stages/deliver.py``);
7. record — the session's messages, the cache entry, the audit event (hashes only), the usage
   in the gateway's ledger, metrics (``stages/record.py``).

No database transaction stays open while a model generates: guard runs in a read-only
transaction, the rest up to the model's admission in one short writing transaction
(``_prepare``), and deliver and record in another (``_finish``). Answers that need no model —
a withheld message, a cache hit, nothing relevant found or nothing that answers, extractive
mode, every allowed tier down, the budget or the time spent — finish without one, and say which
mode answered and why (``mode_reason``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from chat.models import ChatSession
from chat.policy import cached_policy
from chat.schemas import AnswerMode, ChatRequest, ChatResponse
from chat.sessions import ChatSessionService
from chat.stages import cache, deliver, generate, guard, record, retrieve, verify
from chat.stages.deliver import ChatEvent
from chat.stages.generate import Draft, Generated
from chat.turn import ChatDeps, ChatTurn, Unit
from dlp.errors import PersonalDataBlocked
from gateway.services import GatewayStream
from kernel.errors import ServiceUnavailable


async def answer(
    deps: ChatDeps, request: ChatRequest, history: list[dict[str, str]] | None
) -> ChatResponse:
    """The JSON answer."""
    prepared = await _prepare(deps, request, history, admit=True)
    if isinstance(prepared, ChatResponse):
        return prepared
    turn = prepared
    try:
        generated = await generate.answer(deps, turn)
        return await _finish(deps, turn, generated)
    finally:
        record.settle_detached(deps, turn)


async def stream(
    deps: ChatDeps, request: ChatRequest, history: list[dict[str, str]] | None
) -> AsyncIterator[ChatEvent]:
    """The answer as events; everything up to the model's first token happens before this
    returns (``ChatService.stream``)."""
    prepared = await _prepare(deps, request, history)
    if isinstance(prepared, ChatResponse):
        return deliver.replay(prepared)
    turn = prepared
    try:
        opened = await generate.open_stream(deps, turn)
    except generate.FAILURES as exc:
        turn.mode_reason = generate.failure_reason(exc)
        return deliver.replay(await _finish(deps, turn, Generated(None, 0)))
    return _relay(deps, turn, opened)


async def _prepare(
    deps: ChatDeps,
    request: ChatRequest,
    history: list[dict[str, str]] | None,
    *,
    admit: bool = False,
) -> ChatTurn | ChatResponse:
    """Guard, cache and retrieve: the turn ready for a model, or the answer when none is
    needed. ``admit``: admit the model call in the writing transaction (``generate.admit``)."""
    # The models' share of the request (the injection guard, the inbound scan and the
    # question's embedding: most of its CPU time) runs in a read-only transaction; the trips
    # it found are appended in the writing transaction that follows.
    async with deps.reading() as session:
        policy = await cached_policy(session, deps.ctx, deps.policies)
        screened = await guard.screen(deps, session, request.message)
    async with deps.writing() as unit:
        await screened.recorder.flush(unit.audit)
        sessions = ChatSessionService(unit.session, deps.ctx, unit.keys)
        dlp = deps.dlp(unit.session, unit.audit, screened.scanner)
        if screened.scan is None or screened.vector is None:
            row, new = await record.open_session(
                sessions, request.session_id, guard.WITHHELD_MESSAGE
            )
            turn = guard.withheld_turn(request, policy, row.id, new)
            return await _no_model(
                deps, unit, sessions, row, turn, guard.WITHHELD, "message_withheld"
            )
        # The session (and its title) only ever holds the message as DLP left it.
        row, new = await record.open_session(sessions, request.session_id, screened.scan.text)
        turns = await guard.history(dlp, sessions, row, new, history)
        turn = await guard.open_turn(deps, request, policy, screened, row.id, new, turns)

        cached = await cache.lookup(deps, unit, turn)
        if cached is not None:
            await record.remember(deps, sessions, row, turn, cached, unit.audit)
            return cached

        await retrieve.retrieve(deps, unit, dlp, turn)
        if not turn.passages:
            return await _no_model(
                deps, unit, sessions, row, turn, deliver.NOTHING_FOUND, "no_sources"
            )
        if turn.mode == AnswerMode.EXTRACTIVE:
            return await _extractive(deps, unit, turn, turn.mode_reason)
        if not await retrieve.answers(deps, turn):
            return await _no_model(
                deps, unit, sessions, row, turn, deliver.NOTHING_FOUND, "no_answer_in_sources"
            )

        turn.room = await generate.room(deps, turn)
        if admit:
            await generate.admit(deps, unit, turn)
        return turn


async def _relay(deps: ChatDeps, turn: ChatTurn, opened: GatewayStream) -> AsyncIterator[ChatEvent]:
    """The stream's events: ``meta``, then each sentence as outbound DLP and the gate pass it,
    then the citations and ``done`` once the answer is recorded. An outage while the answer is
    recorded (database, KMS) ends the stream with an ``error`` event, as a JSON answer's 503;
    a revision's model call is settled in the background whenever the answer's closing
    transaction did not commit (the stream's own call settles itself, ``GatewayService``)."""
    try:
        async for event in _relayed(deps, turn, opened):
            yield event
    except ServiceUnavailable as outage:
        yield deliver.outage(outage)
    finally:
        record.settle_detached(deps, turn)


async def _relayed(
    deps: ChatDeps, turn: ChatTurn, opened: GatewayStream
) -> AsyncIterator[ChatEvent]:
    yield deliver.opening(turn, opened)
    verifier = verify.Verifier(deps, turn)
    relay = generate.Relay(turn, opened, verifier)
    async with aclosing(relay.events()) as tokens:
        async for event in tokens:
            yield event
    if relay.stopped:  # an ``error`` event ended it
        return
    if (relay.refused is not None or relay.timed_out) and not relay.outbound.released:
        # Nothing was sent yet: the answer takes the JSON path's way out — one revision,
        # then extraction or an abstention — and is streamed once it has passed.
        if relay.timed_out:
            turn.mode, turn.mode_reason = AnswerMode.EXTRACTIVE, "model_timeout"
            turn.spent = relay.generation
            response = await _finish(deps, turn, Generated(None, 0))
        else:
            assert relay.refused is not None
            verify.refused(relay.refused)
            try:
                revised = await generate.revise(deps, turn, relay.generation, relay.refused)
            except PersonalDataBlocked as blocked:
                yield deliver.blocked(blocked)
                return
            response = await _finish(deps, turn, revised)
        async for replayed in deliver.replay(response):
            if replayed.kind != "meta":
                yield replayed
        return
    if relay.refused is not None or relay.timed_out:
        # Sentences already sent stay (each passed); the failing one and the rest do not.
        if relay.refused is not None:
            verify.refused(relay.refused)
        verify.outcome("withheld")
        turn.mode_reason = (
            "ungrounded_sentence_withheld" if relay.refused is not None else "model_timeout"
        )
    else:
        verify.outcome("passed")
    delivered = Draft(relay.generation, await verifier.judged(relay.outbound.text), relay.outbound)
    response = await _finish(deps, turn, Generated(delivered, 0))
    for event in deliver.closing(response):
        yield event


async def _finish(deps: ChatDeps, turn: ChatTurn, generated: Generated) -> ChatResponse:
    """Verify, deliver and record, in the answer's closing transaction: the draft if the gate
    holds, else the cited extractive answer (or an abstention); then the sampled judge."""
    draft = generated.draft
    async with deps.writing() as unit:
        if draft is not None:
            await record.outbound_trips(deps, unit, turn, draft.outbound)
            if not verify.holds(draft.grounding):
                turn.mode_reason, turn.spent = "ungrounded_generation", draft.generation
                draft = None
        if draft is None:
            response = await _extractive(
                deps, unit, turn, turn.mode_reason, revisions=generated.revisions
            )
        else:
            response = deliver.generative(
                turn, draft.generation, draft.grounding, generated.revisions
            )
            await record.complete(deps, unit, turn, response)
        await record.settle(deps, unit, turn)
    # Settled once the closing transaction has committed; until then a failure leaves them to
    # ``record.settle_detached``.
    turn.unsettled.clear()
    if draft is not None:
        verify.sample(deps, turn, response)
    return response


async def _extractive(
    deps: ChatDeps, unit: Unit, turn: ChatTurn, reason: str, *, revisions: int = 0
) -> ChatResponse:
    response = await deliver.extractive(deps, turn, reason, revisions=revisions)
    await record.complete(deps, unit, turn, response)
    return response


async def _no_model(
    deps: ChatDeps,
    unit: Unit,
    sessions: ChatSessionService,
    row: ChatSession,
    turn: ChatTurn,
    text: str,
    reason: str,
) -> ChatResponse:
    """An abstention without sources, remembered in the session (its audit event in the same
    transaction)."""
    response = deliver.abstention(row.id, text, reason)
    await record.remember(deps, sessions, row, turn, response, unit.audit)
    return response
