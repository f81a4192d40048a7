"""Record: what an answer leaves behind, in the writing transaction that answered it (the
first for an answer without a model, the closing one after a model).

- The session: the question and the answer as messages (``open_session`` starts one, titled
  with the question as DLP left it; ``remember`` appends the turn);
- the audit event ``chat.answered``, with keyed hashes of the question and the answer, never
  their text, and why the answer's mode answered (``mode_reason``);
- metrics (answers by mode and reason, groundedness), the ``chat_answered`` log line (hashes
  only), and the raw-content log while a tenant admin's debug switch is on (``chat.debug``);
- the cache entry (``cache.store``, from ``complete``), the outbound DLP trips of a generative
  answer (``outbound_trips``), and the usage of the answer's model calls in the gateway's ledger
  (``settle``; in the background if the answer fails before its transaction commits).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

import structlog
from opentelemetry import trace
from prometheus_client import Histogram

from audit.services import AuditLog
from chat.debug.services import raw_content_until, raw_log
from chat.gate import ANSWER_MODES
from chat.models import ChatSession
from chat.schemas import ChatResponse
from chat.sessions import ChatSessionService
from chat.stages import cache
from chat.stages.deliver import StreamingOutbound
from chat.turn import ChatDeps, ChatTurn, Unit
from kernel.audit_events import AuditAction, ResourceType

log = structlog.get_logger("bulwark.chat")
_tracer = trace.get_tracer("bulwark.chat")

GROUNDEDNESS = Histogram(
    "bulwark_chat_groundedness",
    "Groundedness score of chat answers (share of factual sentences supported by a citation).",
    ["mode"],
    buckets=(0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)


async def open_session(
    sessions: ChatSessionService, session_id: uuid.UUID | None, message: str
) -> tuple[ChatSession, bool]:
    """The asker's session (``session_id``), or a new one titled ``message``; and whether it
    is new."""
    if session_id is not None:
        return await sessions.get(session_id), False
    return await sessions.start(message), True


async def complete(deps: ChatDeps, unit: Unit, turn: ChatTurn, response: ChatResponse) -> None:
    """An answer that went through retrieval: the turn remembered, the cache entry, and its
    groundedness."""
    sessions = ChatSessionService(unit.session, deps.ctx, unit.keys)
    row = await sessions.get(turn.session_id)
    await remember(deps, sessions, row, turn, response, unit.audit)
    await cache.store(deps, unit, turn, response)
    GROUNDEDNESS.labels(str(response.mode)).observe(response.grounded.score)


async def remember(
    deps: ChatDeps,
    sessions: ChatSessionService,
    row: ChatSession,
    turn: ChatTurn,
    response: ChatResponse,
    audit: AuditLog,
) -> None:
    """The turn in the session, the audit event, the answers metric and the log line."""
    await sessions.append(row, "user", turn.question)
    await sessions.append(
        row,
        "assistant",
        response.answer,
        tokens=response.usage.output_tokens,
        citations=[
            {"n": c.n, "document_id": str(c.document_id), "chunk_id": c.chunk_id}
            for c in response.citations
        ],
        meta={
            "mode": str(response.mode),
            "cache": response.cache,
            "tier": response.model.tier,
            "grounded": response.grounded.score,
            "cost_usd": response.usage.cost_usd,
        },
    )
    with _tracer.start_as_current_span("audit.append"):
        await _audit_answer(deps, audit, row, turn, response)
    ANSWER_MODES.labels(str(response.mode), response.mode_reason).inc()
    log.info(
        "chat_answered",
        session_id=str(row.id),
        question_hash=_digest(deps.secret, turn.question),
        mode=str(response.mode),
        cache=response.cache,
        tier=response.model.tier,
        citations=len(response.citations),
    )
    if deps.raw_debug:
        until = await raw_content_until(sessions.sessions.session, deps.ctx)
        if until is not None:
            # The tenant admin's audited, time-bounded switch (chat.debug); off by default.
            raw_log.warning(
                "chat_raw_content",
                raw_content=True,
                session_id=str(row.id),
                question=turn.question,
                answer=response.answer,
                until=until.isoformat(),
            )


async def _audit_answer(
    deps: ChatDeps, audit: AuditLog, row: ChatSession, turn: ChatTurn, response: ChatResponse
) -> None:
    await audit.record(
        AuditAction.CHAT_ANSWERED,
        resource_type=ResourceType.CHAT_SESSION,
        resource_id=row.id,
        detail={
            # Keyed hashes: equal questions match across events, the text never appears.
            "question_hash": _digest(deps.secret, turn.question),
            "answer_hash": _digest(deps.secret, response.answer),
            "documents": sorted({str(c.document_id) for c in response.citations}),
            "mode": str(response.mode),
            "cache": response.cache,
            "tier": response.model.tier,
            # The gateway moved past a failing endpoint or tier (the console's fallback rate).
            "fallback": response.model.reason.endswith("+fallback"),
            "grounded_permille": round(response.grounded.score * 1000),
            # Why this mode answered: every fallback of the answer gate, the model or the
            # budget, and every abstention, is named here.
            "mode_reason": response.mode_reason,
            "revisions": response.revisions,
        },
    )


async def outbound_trips(
    deps: ChatDeps, unit: Unit, turn: ChatTurn, outbound: StreamingOutbound
) -> None:
    """What outbound DLP and the output checks did to a generative answer (it was scanned
    sentence by sentence before the gate judged it, streamed or not)."""
    dlp = deps.dlp(unit.session, unit.audit, turn.scanner)
    await dlp.recorder.record("outbound", outbound.trips + outbound.output_kinds)


async def settle(deps: ChatDeps, unit: Unit, turn: ChatTurn) -> None:
    """The answer's model calls into the gateway's ledger, in the closing transaction."""
    for settlement in turn.unsettled:
        await deps.gateway.settle_in(unit.session, settlement, unit.audit)


def settle_detached(deps: ChatDeps, turn: ChatTurn) -> None:
    """Model calls not yet in the ledger (the answer failed before its closing transaction
    committed): settled in the background."""
    for settlement in turn.unsettled:
        deps.gateway.settle_detached(settlement)
    turn.unsettled.clear()


def _digest(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]
