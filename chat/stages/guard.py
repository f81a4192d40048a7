"""Guard: the asker's message on its way in, before the cache, retrieval, a model or a log sees
it.

- ``screen``: the injection guard, then the inbound scan (redaction, pseudonymisation, blocking
  per the tenant's DLP policy), in a read-only transaction; the question's embedding is computed
  beside them. A message the guard withholds (policy ``strip``) is answered without anything of
  it kept (``withheld_turn``); a message its learned model alone suspects is answered by quoting
  the sources only, never by a model that could follow it (``open_turn``).
- ``history``: the earlier turns, the caller's own ones through the same inbound scan.
- ``open_turn``: the turn as the guard let it in, and the mode that answers it (the request's,
  the tenant's policy's, or the deployment's default).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import ChatSession
from chat.schemas import AnswerMode, ChatPolicyBody, ChatRequest
from chat.sessions import ChatSessionService
from chat.turn import ChatDeps, ChatTurn
from dlp import injection
from dlp.services import DlpScanner, DlpService, InboundScan, TripRecorder

WITHHELD = "Your message was withheld by your organisation's prompt-injection policy."
WITHHELD_MESSAGE = "[message withheld by the prompt-injection policy]"

_tracer = trace.get_tracer("bulwark.chat")


@dataclass(frozen=True, slots=True)
class Screened:
    """The message after the guard and the inbound scan. ``scan`` and ``vector`` are None when
    the guard withheld it; ``recorder`` holds the trips found, appended in the writing
    transaction that follows (``TripRecorder.flush``)."""

    scan: InboundScan | None
    vector: list[float] | None
    scanner: DlpScanner
    recorder: TripRecorder


async def _first(vectors: Awaitable[NDArray[np.float32]]) -> NDArray[np.float32]:
    """The first row of an embedding batch being computed (shielded: the caller still awaits
    the batch itself, and cancels it)."""
    batch = await asyncio.shield(vectors)
    return np.asarray(batch[0], dtype=np.float32)


async def screen(deps: ChatDeps, session: AsyncSession, message: str) -> Screened:
    """``message`` through the guard and the inbound scan, in the read-only ``session``: the
    models' share of the request (most of its CPU time) holds no write lock. A refusal is
    recorded as ever (``TripRecorder``)."""
    scanning = deps.dlp(session, deps.audit_log(session), deferred=True)
    # The question's embedding is computed while DLP scans it (two cores, two models).
    # The injection guard reads it too (its learned half judges the message's meaning
    # as well as its words), so it costs nothing more; the scan's result counts only
    # once the guard has let the message through. The embedding is kept only if the
    # scan left the text as it was, else the scanned text is embedded: what reaches
    # the cache and the index is always the scanned question.
    embedder = deps.knowledge.embedder
    speculative = asyncio.ensure_future(embedder.embed_async([message]))
    first = (
        asyncio.ensure_future(_first(speculative))
        if embedder.model_id == injection.embedding_model()
        else None
    )
    try:
        with _tracer.start_as_current_span("dlp.inbound") as span:
            scan = await scanning.screen_inbound(message, embedding=first)
            if scan is not None:
                span.set_attribute("bulwark.dlp.findings", sum(scan.findings.values()))
    except BaseException:
        speculative.cancel()
        if first is not None:
            first.cancel()
        raise
    vector = None
    if scan is None:
        speculative.cancel()
    else:
        embedded = await speculative
        if scan.text != message:
            embedded = await embedder.embed_async([scan.text])
        vector = embedded[0].tolist()
    return Screened(scan, vector, await scanning.scanner(), scanning.recorder)


async def history(
    dlp: DlpService,
    sessions: ChatSessionService,
    row: ChatSession,
    new: bool,
    given: list[dict[str, str]] | None,
) -> list[dict[str, str]]:
    """Earlier turns: the session's (stored after DLP), or the caller's own, whose user
    messages pass the inbound scan like the question does."""
    if given is None:
        stored = [] if new else await sessions.history(row)
        return [{"role": t.role, "content": t.content} for t in stored]
    turns = []
    for turn in given:
        content = turn["content"]
        if turn["role"] == "user":
            content = (await dlp.scan_inbound(content)).text
        turns.append({"role": turn["role"], "content": content})
    return turns


def withheld_turn(
    request: ChatRequest, policy: ChatPolicyBody, session_id: uuid.UUID, new: bool
) -> ChatTurn:
    """The turn of a withheld message: nothing of it is kept, not as a title, not as a message."""
    return ChatTurn(request, policy, session_id, new, WITHHELD_MESSAGE, None, False, [], [])


async def open_turn(
    deps: ChatDeps,
    request: ChatRequest,
    policy: ChatPolicyBody,
    screened: Screened,
    session_id: uuid.UUID,
    new: bool,
    turns: list[dict[str, str]],
) -> ChatTurn:
    """The turn of a message the guard let in, and the mode that answers it, and why."""
    scan, vector = screened.scan, screened.vector
    # A withheld message opens no turn.
    assert scan is not None
    assert vector is not None
    turn = ChatTurn(
        request=request,
        policy=policy,
        session_id=session_id,
        new_session=new,
        question=scan.text,
        vault=scan.vault if len(scan.vault) else None,
        pii_found=bool(scan.findings),
        vector=vector,
        history=turns,
    )
    turn.scanner = screened.scanner
    turn.mode = request.mode or policy.mode or await _default_mode(deps)
    turn.mode_reason = (
        "requested" if request.mode else "tenant_policy" if policy.mode else "deployment_default"
    )
    if scan.suspected:  # the injection guard's learned model: quotes only, no model
        turn.mode, turn.mode_reason = AnswerMode.EXTRACTIVE, "injection_suspected"
    return turn


async def _default_mode(deps: ChatDeps) -> AnswerMode:
    """The deployment's answer mode for a tenant whose policy names none."""
    if await deps.gateway.configured_generation(deps.ctx):
        return AnswerMode.GENERATIVE
    return AnswerMode.EXTRACTIVE
