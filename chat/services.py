"""One grounded answer, along the path of DESIGN.md §2.

DLP inbound (injection guard, then redaction/pseudonymization) → exact, then semantic cache →
retrieve with the ABAC filter inside the vector query (fan-out for multi-part questions, per
policy) → injection guard on the retrieved chunks → the evidence test (abstain without a model) →
numbered sources fitted to the model's window → gateway (routing, fallback, budgets) → DLP
outbound and output checks, sentence by sentence → the answer gate (``chat.gate``; one
revision, then the cited extract) → citations → session messages, cache entry, audit event
(hashes only).

No database transaction stays open while a model generates: the steps before the model run in
one short regional transaction (``_prepare``), the steps after it in another (``_finish``).
Answers that need no model — nothing relevant found or nothing that answers, extractive mode,
every allowed tier down, the budget or the time spent — finish without one, and say which mode
answered and why.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import numpy as np
import structlog
from numpy.typing import NDArray
from opentelemetry import trace
from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from audit.canon import canonical_json
from audit.services import AuditLog
from chat.debug.services import raw_content_until, raw_log
from chat.gate import (
    ANSWER_MODES,
    GATE_OUTCOMES,
    GATE_VERSION,
    AnswerGate,
    count_blocked,
    critique,
)
from chat.judge import AnswerJudge
from chat.models import ChatSession
from chat.repositories import ChatPolicyRepository
from chat.schemas import (
    AnswerMode,
    ChatPolicyBody,
    ChatRequest,
    ChatResponse,
    Citation,
    Grounded,
    ModelInfo,
    Usage,
)
from chat.sessions import ChatSessionService
from chat.workflows import Generation, add_usage, fan_out, subquestions
from dlp import injection
from dlp.errors import PersonalDataBlocked
from dlp.services import DlpEngine, DlpScanner, DlpService, TripRecorder
from dlp.transform import PseudonymVault
from gateway.adapters.base import ModelMessage
from gateway.errors import (
    InputTooLong,
    ModelProviderRejected,
    ModelUnavailable,
    QuotaExhausted,
)
from gateway.services import (
    Caller,
    GatewayRequest,
    GatewayResult,
    GatewayService,
    GatewayStream,
    Settlement,
    estimate_tokens,
)
from gateway.services import PreparedCall as Admission
from kernel.audit_events import AuditAction, ResourceType
from kernel.epochs import EpochCache
from kernel.tenancy import TenantContext
from keys.services import Keyring, TenantKeys
from residency.registry import RegionRegistry
from retrieval.cache.services import CachePolicy, SemanticCache
from retrieval.embeddings import Embedder
from retrieval.extractive import Extract, evidence, extract, render
from retrieval.grounding import CITATION, Grounding, check, sentences
from retrieval.index import KnowledgeIndex, Passage
from retrieval.prompt import SYSTEM_PROMPT, PromptBudget, Source, Turn, compose
from retrieval.repositories import DocumentRepository

log = structlog.get_logger("bulwark.chat")

NOTHING_FOUND = (
    "The documents available to you do not answer this question, so no answer was generated."
)
WITHHELD = "Your message was withheld by your organisation's prompt-injection policy."
WITHHELD_MESSAGE = "[message withheld by the prompt-injection policy]"
# Tokens kept free for a generative answer (the gateway's ``max_tokens`` of every chat call).
ANSWER_TOKENS = 400
# The failures of a model call after which the answer is extractive (``mode_reason`` says why).
_MODEL_FAILURES = (ModelUnavailable, ModelProviderRejected, QuotaExhausted, InputTooLong)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, QuotaExhausted):
        return "budget_exhausted"
    if isinstance(exc, TimeoutError):
        return "model_timeout"
    if isinstance(exc, InputTooLong):
        return "question_too_long_for_model"
    return "model_unavailable"


_tracer = trace.get_tracer("bulwark.chat")
T = TypeVar("T")


def _genai(span: Any, tier: str, provider: str, model: str, usage: Any) -> None:
    """OpenTelemetry GenAI semantic-convention attributes of one model call (no text)."""
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.system", provider)
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.response.model", model)
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens if usage else 0)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens if usage else 0)
    span.set_attribute("bulwark.tier", tier)


GROUNDEDNESS = Histogram(
    "bulwark_chat_groundedness",
    "Groundedness score of chat answers (share of factual sentences supported by a citation).",
    ["mode"],
    buckets=(0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)


@dataclass(frozen=True, slots=True)
class ChatEvent:
    kind: str  # meta | token | citation | done | error
    payload: Any


async def _first(vectors: Awaitable[NDArray[np.float32]]) -> NDArray[np.float32]:
    """The first row of an embedding batch being computed (shielded: the caller still awaits
    the batch itself, and cancels it)."""
    batch = await asyncio.shield(vectors)
    return np.asarray(batch[0], dtype=np.float32)


async def _replay(response: ChatResponse) -> AsyncIterator[ChatEvent]:
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
    yield ChatEvent("token", {"text": response.answer})
    for citation in response.citations:
        yield ChatEvent("citation", citation)
    yield ChatEvent("done", response)


@dataclass(slots=True)
class ChatTurn:
    """What the model-free steps established for one request (in memory only)."""

    request: ChatRequest
    policy: ChatPolicyBody
    session_id: uuid.UUID
    new_session: bool
    question: str  # the message as the model, cache and logs may see it
    vault: PseudonymVault | None
    pii_found: bool
    vector: list[float]
    history: list[dict[str, str]]
    passages: list[Passage] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    parts: int = 1  # > 1: a multi-part question fanned out; its reduce step asks for depth
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    scanner: DlpScanner | None = None
    answered: ChatResponse | None = None  # finished without a model (cache, nothing found...)
    mode: AnswerMode = AnswerMode.GENERATIVE
    mode_reason: str = "tenant_policy"
    # The prompt, and its first model call as admitted in the request's first writing
    # transaction (``ChatService._admit``); ``exhausted``: a quota refused it.
    messages: list[dict[str, str]] | None = None
    admitted: Admission | None = None
    exhausted: bool = False
    # Tokens of prompt the models this answer may go to can take (``GatewayService.prompt_room``).
    room: int | None = None
    # Model calls paid for an answer that was not delivered (the gate refused it): their usage
    # is reported with the extractive answer that replaced it.
    spent: Generation | None = None
    # The delivered generation as outbound DLP and the output checks left it, and their trips.
    outbound: StreamingOutbound | None = None
    # When the tier's time budget (``ChatPolicyBody.time_budget``) for this answer runs out.
    deadline: float | None = None

    @property
    def sources(self) -> list[str]:
        return [p.text for p in self.passages]


class Ungrounded(Exception):
    """A streamed sentence failed the answer gate: it is not sent, and the stream stops."""

    def __init__(self, failing: Grounding) -> None:
        super().__init__("ungrounded sentence")
        self.failing = failing


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
    ``Ungrounded``: it and everything after it are withheld."""

    def __init__(
        self,
        scanner: DlpScanner,
        vault: PseudonymVault | None,
        asker_message: str,
        sources: list[str],
        gate: AnswerGate | None = None,
    ) -> None:
        self.scanner = scanner
        self.vault = vault
        self.asker_message = asker_message
        self.sources = sources
        self.gate = gate
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
        if self.gate is not None:
            judged = await self.gate.judge(checked.text)
            if not judged.passed:
                raise Ungrounded(judged)
        self.released.append(checked.text)
        return checked.text


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


def _digest(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]


class ChatService:
    """Chat for one principal of one tenant."""

    def __init__(
        self,
        ctx: TenantContext,
        *,
        registry: RegionRegistry,
        keyring: Keyring,
        knowledge: KnowledgeIndex,
        gateway: GatewayService,
        dlp_engine: DlpEngine,
        pepper: str,
        request_id: str | None,
        judge: AnswerJudge | None = None,
        raw_debug: bool = False,
        policies: EpochCache[ChatPolicyBody] | None = None,
    ) -> None:
        """``policies``: the process's chat policies, kept under each tenant's epoch."""
        self.ctx = ctx
        self.policies = policies if policies is not None else EpochCache()
        self.raw_debug = raw_debug
        self.judge = judge
        self.registry = registry
        self.keyring = keyring
        self.knowledge = knowledge
        self.gateway = gateway
        self.dlp_engine = dlp_engine
        self.secret = pepper.encode()
        self.request_id = request_id
        # Routing hints of the current request: its number of sources, and "high" reasoning for
        # the reduce step of a fanned-out question (the router then picks the highest tier the
        # tenant's policy allows).
        self._sources_count = 0
        self._reasoning: str | None = None
        # Model calls of this answer not yet in the ledger: recorded in the answer's closing
        # transaction (one write, no second transaction racing it for SQLite's lock), or in
        # the background if the answer fails before that commits.
        self._unsettled: list[Settlement] = []

    # -- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def _unit(
        self, *, gate: bool = True
    ) -> AsyncIterator[tuple[AsyncSession, TenantKeys, AuditLog]]:
        """A short regional transaction. ``gate``: refuse up front unless the tenant's key
        works (the first unit of a request; the second seals with the same key, and sealing
        fails closed on its own)."""
        async with self.registry.tenant_transaction(self.ctx) as session:
            keys = self.keyring.for_tenant(session, self.ctx)
            if gate:
                await keys.require_usable()
            yield session, keys, AuditLog(session, self.ctx, request_id=self.request_id)

    def _dlp(
        self,
        session: AsyncSession,
        audit: AuditLog,
        scanner: DlpScanner | None = None,
        *,
        deferred: bool = False,
    ) -> DlpService:
        recorder = TripRecorder(session, self.ctx, audit, self.registry, deferred=deferred)
        return DlpService(session, self.ctx, self.dlp_engine, recorder, scanner)

    async def _cache(
        self, session: AsyncSession, keys: TenantKeys, policy: ChatPolicyBody
    ) -> SemanticCache:
        return SemanticCache(
            self.ctx,
            session,
            keys,
            await self.knowledge.questions(self.ctx),
            pepper=self.secret,
            policy=CachePolicy(
                enabled=policy.cache_enabled,
                threshold=policy.cache_threshold,
                ttl_seconds=policy.cache_ttl_seconds,
            ),
        )

    # -- the request ----------------------------------------------------------------------

    async def answer(
        self, request: ChatRequest, *, history: list[dict[str, str]] | None = None
    ) -> ChatResponse:
        """``history``: earlier turns given by the caller (the OpenAI-compatible endpoint)
        instead of a stored session's."""
        prepared = await self._prepare(request, history, admit=True)
        if prepared.answered is not None:
            return prepared.answered
        try:
            generation, grounding, revisions = await self._generate(prepared)
            return await self._finish(
                prepared, generation, grounding, revisions, streamed=prepared.outbound
            )
        finally:
            for settlement in self._unsettled:
                self.gateway.settle_detached(settlement)
            self._unsettled.clear()

    async def stream(
        self, request: ChatRequest, *, history: list[dict[str, str]] | None = None
    ) -> AsyncIterator[ChatEvent]:
        """The answer as events: ``meta``, ``token``..., ``citation``..., ``done`` (or
        ``error``). Everything up to the model's first token — DLP, cache, retrieval, routing,
        admission — happens before this returns, so its failures are ordinary problem responses.

        Outbound DLP must see a sentence to judge it (a name is only a name in context), and
        the answer gate must see what it cites, so the model's tokens are released sentence by
        sentence, each after its scan and its check.
        """
        prepared = await self._prepare(request, history)
        if prepared.answered is not None:
            return _replay(prepared.answered)
        self._sources_count = len(prepared.passages)
        self._reasoning = "high" if prepared.parts > 1 else None
        started = time.monotonic()
        try:
            # Until the router has picked the tier, the longest of the tiers' budgets.
            async with asyncio.timeout(prepared.policy.time_budget.of(None)):
                opened = await self.gateway.stream(
                    self.ctx,
                    self._gateway_request(self._messages(prepared), request.model),
                    self._caller(),
                )
        except (*_MODEL_FAILURES, TimeoutError) as exc:
            prepared.mode_reason = _failure_reason(exc)
            done = await self._finish(prepared, None, check("", prepared.sources), 0)
            return _replay(done)
        prepared.deadline = started + prepared.policy.time_budget.of(opened.decision.tier)
        return self._relay(prepared, opened)

    async def _relay(self, prepared: ChatTurn, opened: GatewayStream) -> AsyncIterator[ChatEvent]:
        yield ChatEvent(
            "meta",
            {
                "session_id": str(prepared.session_id),
                "cache": "miss",
                "mode": str(AnswerMode.GENERATIVE),
                "model": {
                    "tier": opened.decision.tier,
                    "provider": opened.endpoint,
                    "reason": opened.decision.reason,
                },
            },
        )
        assert prepared.scanner is not None  # set by _prepare before any model call
        gate = self._gate(prepared)
        outbound = StreamingOutbound(
            prepared.scanner, prepared.vault, prepared.request.message, prepared.sources, gate
        )
        usage, cost = None, 0
        events = opened.events
        span = _tracer.start_span("llm.generate")
        refused: Grounding | None = None
        timed_out = False
        assert prepared.deadline is not None  # set when the stream was opened
        try:
            async for event in _until(events, prepared.deadline):
                if event.kind == "delta":
                    released = await outbound.feed(event.text)
                    if released:
                        yield ChatEvent("token", {"text": released})
                elif event.kind == "error":
                    yield ChatEvent(
                        "error",
                        {
                            "code": event.error_code or "model_error",
                            "detail": "The model stream broke off; what was generated was billed.",
                        },
                    )
                    return
                else:
                    usage, cost = event.usage, event.cost_microdollars
            released = await outbound.flush()
        except PersonalDataBlocked as blocked:
            # The answer holds personal data the tenant's policy blocks: stop here. What was
            # released so far had passed its scan; the call is still settled by the gateway.
            yield ChatEvent("error", {"code": blocked.code, "detail": blocked.detail})
            return
        except Ungrounded as failed:
            refused, released = failed.failing, ""
        except TimeoutError:
            timed_out, released = True, ""
        finally:
            # Closing the model stream settles the call even when the client went away.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            _genai(span, opened.decision.tier, opened.endpoint, opened.model, usage)
            span.set_attribute("bulwark.cost_usd", cost / 1_000_000)
            span.end()
        if released:
            yield ChatEvent("token", {"text": released})
        generation = Generation(
            text=outbound.text,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cost_microdollars=cost,
            tier=opened.decision.tier,
            provider=opened.endpoint,
            reason=opened.decision.reason,
        )
        if (refused is not None or timed_out) and not outbound.released:
            # Nothing was sent yet: the answer takes the JSON path's way out — one revision,
            # then extraction or an abstention — and is streamed once it has passed.
            if timed_out:
                prepared.mode, prepared.mode_reason = AnswerMode.EXTRACTIVE, "model_timeout"
                prepared.spent = generation
                response = await self._finish(prepared, None, check("", prepared.sources), 0)
            else:
                assert refused is not None
                count_blocked(refused.failing)
                try:
                    recovered, grounding, revisions = await self._recover(
                        prepared, self._messages(prepared), generation, refused
                    )
                except PersonalDataBlocked as blocked:
                    yield ChatEvent("error", {"code": blocked.code, "detail": blocked.detail})
                    return
                response = await self._finish(
                    prepared, recovered, grounding, revisions, streamed=prepared.outbound
                )
            async for replayed in _replay(response):
                if replayed.kind != "meta":
                    yield replayed
            return
        if refused is not None or timed_out:
            # Sentences already sent stay (each passed); the failing one and the rest do not.
            if refused is not None:
                count_blocked(refused.failing)
            GATE_OUTCOMES.labels("withheld").inc()
            prepared.mode_reason = "ungrounded_sentence_withheld" if refused else "model_timeout"
        else:
            GATE_OUTCOMES.labels("passed").inc()
        response = await self._finish(
            prepared, generation, await self._judged(gate, outbound.text), 0, streamed=outbound
        )
        for citation in response.citations:
            yield ChatEvent("citation", citation)
        yield ChatEvent("done", response)

    async def _prepare(
        self,
        request: ChatRequest,
        history: list[dict[str, str]] | None = None,
        *,
        admit: bool = False,
    ) -> ChatTurn:
        """``admit``: admit the model call in the writing transaction (``_admit``)."""
        # The models' share of the request (the injection guard, the inbound scan and the
        # question's embedding: most of its CPU time) runs in a read-only transaction, so it
        # holds no write lock (SQLite has one per database, which every ingestion, settlement
        # and audit append of the region waits for); the trips it found are appended in the
        # writing transaction that follows. A refusal is recorded as ever (``TripRecorder``).
        async with self.registry.tenant_transaction(self.ctx, read_only=True) as session:
            await self.keyring.for_tenant(session, self.ctx).require_usable()
            policy = self.policies.get(self.ctx)
            if policy is None:
                policy = await policy_of(session, self.ctx)
                self.policies.put(self.ctx, policy)
            scanning = self._dlp(
                session, AuditLog(session, self.ctx, request_id=self.request_id), deferred=True
            )
            # The question's embedding is computed while DLP scans it (two cores, two models).
            # The injection guard reads it too (its learned half judges the message's meaning
            # as well as its words), so it costs nothing more; the scan's result counts only
            # once the guard has let the message through. The embedding is kept only if the
            # scan left the text as it was, else the scanned text is embedded: what reaches
            # the cache and the index is always the scanned question.
            embedder = self.knowledge.embedder
            speculative = asyncio.ensure_future(embedder.embed_async([request.message]))
            first = (
                asyncio.ensure_future(_first(speculative))
                if embedder.model_id == injection.embedding_model()
                else None
            )
            try:
                with _tracer.start_as_current_span("dlp.inbound") as span:
                    scan = await scanning.screen_inbound(request.message, embedding=first)
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
                if scan.text != request.message:
                    embedded = await embedder.embed_async([scan.text])
                vector = embedded[0].tolist()
            scanner = await scanning.scanner()
        async with self._unit(gate=False) as (session, keys, audit):
            await scanning.recorder.flush(audit)
            sessions = ChatSessionService(session, self.ctx, keys)
            dlp = self._dlp(session, audit, scanner)
            if scan is None or vector is None:
                # Nothing of a withheld message is kept: not as a title, not as a message.
                row, new = await self._session(sessions, request.session_id, WITHHELD_MESSAGE)
                prepared = ChatTurn(
                    request, policy, row.id, new, WITHHELD_MESSAGE, None, False, [], []
                )
                prepared.answered = await self._no_model(
                    sessions, row, prepared, WITHHELD, "message_withheld"
                )
                return prepared
            # The session (and its title) only ever holds the message as DLP left it.
            row, new = await self._session(sessions, request.session_id, scan.text)
            turns = await self._history(dlp, sessions, row, new, history)
            prepared = ChatTurn(
                request=request,
                policy=policy,
                session_id=row.id,
                new_session=new,
                question=scan.text,
                vault=scan.vault if len(scan.vault) else None,
                pii_found=bool(scan.findings),
                vector=vector,
                history=turns,
            )
            prepared.scanner = scanner
            prepared.mode = request.mode or policy.mode or await self._default_mode()
            prepared.mode_reason = (
                "requested"
                if request.mode
                else "tenant_policy"
                if policy.mode
                else "deployment_default"
            )
            if scan.suspected:  # the injection guard's learned model: quotes only, no model
                prepared.mode, prepared.mode_reason = AnswerMode.EXTRACTIVE, "injection_suspected"
            cache_scope = self._cache_scope(prepared)
            cacheable = not turns and not prepared.pii_found and request.cache
            if cacheable:
                cache = await self._cache(session, keys, policy)
                with _tracer.start_as_current_span("cache.lookup") as span:
                    lookup = await cache.lookup(scan.text, vector, cache_scope)
                    span.set_attribute("bulwark.cache.outcome", lookup.outcome)
                if lookup.hit is not None:
                    cached = msgspec.convert(
                        {
                            **lookup.hit.answer,
                            "session_id": str(row.id),
                            "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
                            "cache": lookup.outcome,
                        },
                        ChatResponse,
                    )
                    await self._remember(sessions, row, prepared, cached, audit)
                    prepared.answered = cached
                    return prepared
            with _tracer.start_as_current_span("retrieve") as span:
                await self._retrieve(prepared, keys, session)
                guarded_chunks = await dlp.guard_chunks(prepared.sources)
                span.set_attribute("bulwark.retrieve.passages", len(prepared.passages))
                span.set_attribute("bulwark.retrieve.parts", prepared.parts)
            kept = [
                (p, text) for p, text in zip(prepared.passages, guarded_chunks, strict=True) if text
            ]
            prepared.passages = [
                Passage(p.chunk_id, p.document_id, p.score, p.heading_path, text)
                for p, text in kept
            ]
            if not prepared.passages:
                prepared.answered = await self._no_model(
                    sessions, row, prepared, NOTHING_FOUND, "no_sources"
                )
                return prepared
            if prepared.mode == AnswerMode.EXTRACTIVE:
                prepared.answered = await self._extractive(
                    prepared, session, keys, audit, prepared.mode_reason
                )
                return prepared
            # Abstention is decided from the evidence before any model is paid: the retrieved
            # text must hold a sentence that covers what the question specifically asks. A
            # follow-up ("and for trains?") leans on the conversation, so it goes to the model
            # and the answer gate judges what comes back.
            answers = bool(turns) or await asyncio.to_thread(
                evidence,
                self._asked(prepared),
                self._quotable(prepared),
                self._sentence_vectors(),
                prepared.vector,
                contexts=self._contexts(prepared),
            )
            if not answers:
                prepared.answered = await self._no_model(
                    sessions, row, prepared, NOTHING_FOUND, "no_answer_in_sources"
                )
                return prepared
            prepared.room = await self.gateway.prompt_room(self.ctx, request.model, ANSWER_TOKENS)
            if admit:
                await self._admit(prepared, session)
            return prepared

    async def _default_mode(self) -> AnswerMode:
        """The deployment's answer mode for a tenant whose policy names none."""
        if await self.gateway.configured_generation(self.ctx):
            return AnswerMode.GENERATIVE
        return AnswerMode.EXTRACTIVE

    async def _admit(self, prepared: ChatTurn, session: AsyncSession) -> None:
        """Route and admit the answer's first model call (rate limits, quota reservation) in
        this writing transaction rather than one of its own; a quota refusal is answered
        without a model (``_generate``), a rate-limit refusal rolls the request back (429)."""
        prepared.messages = self._messages(prepared)
        self._sources_count = len(prepared.passages)
        self._reasoning = "high" if prepared.parts > 1 else None
        try:
            prepared.admitted = await self.gateway.reserve(
                session,
                self.ctx,
                self._gateway_request(prepared.messages, prepared.request.model),
                self._caller(),
            )
        except QuotaExhausted:
            prepared.exhausted = True
        except InputTooLong:
            # Only the question itself can be too long now that the sources are fitted.
            prepared.exhausted, prepared.mode_reason = True, "question_too_long_for_model"

    async def _history(
        self,
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

    async def _session(
        self, sessions: ChatSessionService, session_id: uuid.UUID | None, message: str
    ) -> tuple[ChatSession, bool]:
        if session_id is not None:
            return await sessions.get(session_id), False
        return await sessions.start(message), True

    def _cache_scope(self, prepared: ChatTurn) -> dict[str, Any]:
        request = prepared.request
        return {
            "mode": str(prepared.mode),
            "top_k": request.top_k,
            "filters": dict(sorted(request.filters.items())),
            "model": request.model,
            # Only answers that passed this gate are served again: entries cached before the
            # answer gate existed, or under a looser policy than the tenant's now, never match.
            "gate": GATE_VERSION,
            "min_support": prepared.policy.min_support,
        }

    async def _retrieve(self, prepared: ChatTurn, keys: TenantKeys, session: AsyncSession) -> None:
        request, policy = prepared.request, prepared.policy
        parts = (
            subquestions(prepared.question)
            if (request.parallel if request.parallel is not None else policy.parallel)
            else [prepared.question]
        )

        async def retrieve(part: str) -> list[Passage]:
            vector = prepared.vector if part == prepared.question else None
            return await self.knowledge.search(
                self.ctx, keys, part, top_k=request.top_k, filters=request.filters, vector=vector
            )

        prepared.parts = len(parts)
        if len(parts) > 1:
            passages = await fan_out(parts, retrieve, top_k=request.top_k)
        else:
            passages = await retrieve(prepared.question)
        best = await self.knowledge.best_similarity(self.ctx, prepared.vector, request.filters)
        relevant = best is not None and best >= policy.min_relevance
        prepared.passages = passages if relevant else []
        documents = await DocumentRepository(session, self.ctx).get_many(
            list({uuid.UUID(p.document_id) for p in prepared.passages})
        )
        for document in documents:
            title = await keys.open("document-title", str(document.id), document.sealed_title)
            prepared.titles[str(document.id)] = title.decode()
            prepared.versions[document.id] = document.version

    # -- generation (no transaction open) -------------------------------------------------

    def _messages(self, prepared: ChatTurn, *, reserve: int = 0) -> list[dict[str, str]]:
        """The prompt, fitted to the room of the models it may go to, less ``reserve`` tokens
        for what follows it (a revision's previous answer and critique)."""
        with _tracer.start_as_current_span("compose_prompt") as span:
            messages = self._compose(prepared, reserve)
            span.set_attribute("bulwark.prompt.sources", len(prepared.passages))
            return messages

    def _compose(self, prepared: ChatTurn, reserve: int = 0) -> list[dict[str, str]]:
        sources = [
            Source(prepared.titles.get(p.document_id, ""), p.heading_path, p.text)
            for p in prepared.passages
        ]
        fit = (
            PromptBudget(prepared.room - reserve, estimate_tokens)
            if prepared.room is not None
            else None
        )
        return compose(
            prepared.question,
            sources,
            [Turn(m["role"], m["content"]) for m in prepared.history],
            history_budget=prepared.policy.history_tokens,
            counter=self.knowledge.counter,
            fit=fit,
        )

    @staticmethod
    def _budget(prepared: ChatTurn, tier: str | None) -> float:
        """The tier's time budget for this answer, from now: the revision gets what is left."""
        seconds = prepared.policy.time_budget.of(tier)
        prepared.deadline = time.monotonic() + seconds
        return seconds

    def _gate(self, prepared: ChatTurn) -> AnswerGate:
        return AnswerGate(
            prepared.sources,
            SYSTEM_PROMPT,
            prepared.policy.min_support,
            self._sentence_vectors(),
        )

    async def _call(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        admitted: Admission | None = None,
        seconds: float | None = None,
    ) -> Generation:
        """One model call, within ``seconds`` (the tier's time budget) when given."""
        with _tracer.start_as_current_span("llm.generate") as span:
            async with asyncio.timeout(seconds):
                result = await self._complete_call(messages, model, admitted)
            if result.pending is not None:
                self._unsettled.append(result.pending)
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

    def _gateway_request(self, messages: list[dict[str, str]], model: str) -> GatewayRequest:
        return GatewayRequest(
            messages=tuple(ModelMessage(m["role"], m["content"]) for m in messages),
            model=model,
            max_tokens=ANSWER_TOKENS,
            sources=self._sources_count,
            reasoning=self._reasoning,
        )

    def _caller(self) -> Caller:
        return Caller.of(self.ctx, self.request_id, route="chat")

    async def _complete_call(
        self, messages: list[dict[str, str]], model: str, admitted: Admission | None = None
    ) -> GatewayResult:
        return await self.gateway.complete(
            self.ctx,
            self._gateway_request(messages, model),
            self._caller(),
            # The ledger and audit of the call are written with the answer (``_finish``).
            settle="caller",
            admitted=admitted,
        )

    async def _generate(self, prepared: ChatTurn) -> tuple[Generation | None, Grounding, int]:
        """The model's answer if it passes the gate (after at most one revision); else
        ``None`` and the reason in ``prepared.mode_reason``: the answer is then extractive."""
        messages = prepared.messages or self._messages(prepared)
        self._sources_count = len(prepared.passages)
        self._reasoning = "high" if prepared.parts > 1 else None
        nothing = check("", prepared.sources)
        if prepared.exhausted:
            prepared.mode = AnswerMode.EXTRACTIVE
            if prepared.mode_reason != "question_too_long_for_model":
                prepared.mode_reason = "budget_exhausted"
            return None, nothing, 0
        tier = prepared.admitted.decision.tier if prepared.admitted is not None else None
        try:
            first = await self._call(
                messages,
                model=prepared.request.model,
                admitted=prepared.admitted,
                seconds=self._budget(prepared, tier),
            )
        except (*_MODEL_FAILURES, TimeoutError) as exc:
            prepared.mode = AnswerMode.EXTRACTIVE
            prepared.mode_reason = _failure_reason(exc)
            return None, nothing, 0
        gate = self._gate(prepared)
        grounding = await self._judged(gate, await self._scanned(prepared, first.text))
        if gate.passes(grounding):
            GATE_OUTCOMES.labels("passed").inc()
            return first, grounding, 0
        count_blocked(grounding.failing)
        return await self._recover(prepared, messages, first, grounding)

    @staticmethod
    async def _judged(gate: AnswerGate, text: str) -> Grounding:
        """The gate's judgement of an answer as it would be delivered, as a trace span."""
        with _tracer.start_as_current_span("groundedness") as span:
            grounding = await gate.judge(text)
            span.set_attribute("bulwark.groundedness", grounding.score)
        return grounding

    async def _scanned(self, prepared: ChatTurn, text: str) -> str:
        """``text`` through outbound DLP and the output checks, sentence by sentence as a
        stream is (``StreamingOutbound``; a blocked entity raises ``PersonalDataBlocked``):
        what the gate judges is what would be delivered."""
        assert prepared.scanner is not None  # set by _prepare before any model call
        outbound = StreamingOutbound(
            prepared.scanner, prepared.vault, prepared.request.message, prepared.sources
        )
        with _tracer.start_as_current_span("dlp.outbound"):
            await outbound.feed(text)
            await outbound.flush()
        prepared.outbound = outbound
        return outbound.text

    async def _recover(
        self,
        prepared: ChatTurn,
        messages: list[dict[str, str]],
        first: Generation,
        grounding: Grounding,
    ) -> tuple[Generation | None, Grounding, int]:
        """A first answer failed the gate: one revision naming its failing sentences, checked
        the same way; if that fails too (or is not allowed, or the model fails), ``None``."""
        policy, gate = prepared.policy, self._gate(prepared)
        nothing = check("", prepared.sources)
        spent, revisions = first, 0
        left = prepared.deadline - time.monotonic() if prepared.deadline else None
        if policy.revise_below > 0 and policy.max_revisions > 0 and (left is None or left > 0):
            request = critique(grounding)
            # The revision carries the first answer and the critique: the sources make room.
            reserve = estimate_tokens(first.text) + estimate_tokens(request) + 16
            revision = [
                *self._messages(prepared, reserve=reserve),
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": request},
            ]
            try:
                attempt = await self._call(revision, model=first.tier, seconds=left)
            except (*_MODEL_FAILURES, TimeoutError):
                attempt = None
            if attempt is not None:
                revisions = 1
                spent = add_usage(first, attempt)
                revised = await self._judged(gate, await self._scanned(prepared, attempt.text))
                if gate.passes(revised):
                    GATE_OUTCOMES.labels("revised").inc()
                    return spent, revised, revisions
                count_blocked(revised.failing)
        GATE_OUTCOMES.labels("fallback").inc()
        prepared.mode = AnswerMode.EXTRACTIVE
        prepared.mode_reason = "ungrounded_generation"
        prepared.spent = spent
        return None, nothing, revisions

    # -- after the model ------------------------------------------------------------------

    async def _finish(
        self,
        prepared: ChatTurn,
        generation: Generation | None,
        grounding: Grounding,
        revisions: int,
        *,
        streamed: StreamingOutbound | None = None,
    ) -> ChatResponse:
        async with self._unit(gate=False) as (session, keys, audit):
            # ``grounding``: the gate's judgement of what is delivered (``streamed.text``).
            final = grounding
            if generation is not None:
                # Scanned sentence by sentence before the gate judged it (streamed or not):
                # record what the scans did.
                if streamed is not None:
                    dlp = self._dlp(session, audit, prepared.scanner)
                    await dlp.recorder.record("outbound", streamed.trips + streamed.output_kinds)
                if streamed is None or not final.passed or not final.checks:
                    # Never expected (what is delivered was judged as it was scanned); the
                    # gate holds all the same.
                    count_blocked(final.failing)
                    GATE_OUTCOMES.labels("fallback").inc()
                    prepared.mode_reason, prepared.spent = "ungrounded_generation", generation
                    generation = None
            if generation is None:
                response = await self._extractive(
                    prepared, session, keys, audit, prepared.mode_reason, revisions=revisions
                )
                for settlement in self._unsettled:
                    await self.gateway.settle_in(session, settlement, audit)
                self._unsettled.clear()
                return response
            response = ChatResponse(
                answer=final.answer,
                citations=self._citations(prepared, final),
                session_id=prepared.session_id,
                grounded=Grounded(
                    final.score, final.uncited_sentences, final.unsupported_sentences
                ),
                usage=Usage(
                    generation.input_tokens,
                    generation.output_tokens,
                    generation.cost_microdollars / 1_000_000,
                ),
                model=ModelInfo(generation.tier, generation.provider, generation.reason),
                cache="miss",
                mode=AnswerMode.GENERATIVE,
                mode_reason=prepared.mode_reason,
                revisions=revisions,
            )
            await self._complete(session, keys, audit, prepared, response)
            for settlement in self._unsettled:
                await self.gateway.settle_in(session, settlement, audit)
        self._unsettled.clear()
        if self.judge is not None:
            self.judge.maybe(
                self.ctx,
                question=prepared.question,
                sources=prepared.sources,
                answer=response.answer,
                tier=response.model.tier,
            )
        return response

    async def _extractive(
        self,
        prepared: ChatTurn,
        session: AsyncSession,
        keys: TenantKeys,
        audit: AuditLog,
        reason: str,
        *,
        revisions: int = 0,
    ) -> ChatResponse:
        """The cited sentences that answer the question (``retrieval.extractive``), or an
        abstention when none does. Model calls already paid for (an answer the gate refused)
        are reported in its usage and model fields."""
        extracts = await self._extract(prepared)
        text = render(extracts) if extracts else NOTHING_FOUND
        grounding = check(text, prepared.sources)
        spent = prepared.spent
        response = ChatResponse(
            answer=grounding.answer,
            citations=self._citations(prepared, grounding),
            session_id=prepared.session_id,
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
        await self._complete(session, keys, audit, prepared, response)
        return response

    async def _extract(self, prepared: ChatTurn) -> list[Extract]:
        return await asyncio.to_thread(
            extract,
            self._asked(prepared),
            self._quotable(prepared),
            self._sentence_vectors(),
            contexts=self._contexts(prepared),
        )

    @staticmethod
    def _quotable(prepared: ChatTurn) -> list[str]:
        """The passages as an extractive answer may quote them: a chunk the injection guard
        wrapped, without its wrapper (the sentences that carried the instruction are gone)."""
        return [injection.quoted_body(text) for text in prepared.sources]

    def _sentence_vectors(self) -> Embedder:
        return self.knowledge.sentences.for_tenant(str(self.ctx.tenant_id))

    @staticmethod
    def _asked(prepared: ChatTurn) -> str:
        """The question as the evidence test and extraction read it: with the asker's own
        pseudonymised names put back (in memory only; the sentences chosen come from the
        sources, never from the question)."""
        if prepared.vault is None:
            return prepared.question
        return prepared.vault.restore(prepared.question)

    @staticmethod
    def _contexts(prepared: ChatTurn) -> list[str]:
        """Each passage's document title and heading path (what its sentences are about)."""
        return [
            " ".join([prepared.titles.get(p.document_id, ""), *p.heading_path])
            for p in prepared.passages
        ]

    def _citations(self, prepared: ChatTurn, grounding: Grounding) -> list[Citation]:
        citations = []
        for n in grounding.cited:
            passage = prepared.passages[n - 1]
            citations.append(
                Citation(
                    n=n,
                    document_id=uuid.UUID(passage.document_id),
                    title=prepared.titles.get(passage.document_id, ""),
                    chunk_id=passage.chunk_id,
                    quote=" ".join(passage.text.split())[:300],
                )
            )
        return citations

    async def _complete(
        self,
        session: AsyncSession,
        keys: TenantKeys,
        audit: AuditLog,
        prepared: ChatTurn,
        response: ChatResponse,
    ) -> None:
        sessions = ChatSessionService(session, self.ctx, keys)
        row = await sessions.get(prepared.session_id)
        await self._remember(sessions, row, prepared, response, audit)
        cited = {uuid.UUID(str(c.document_id)) for c in response.citations}
        # Cached only when it cites sources (a hit re-checks each for this asker), and when it
        # depends on nothing but the question: no history, no personal data of the asker's.
        if cited and not prepared.history and not prepared.pii_found and prepared.request.cache:
            answer = _cacheable(response)
            cache = await self._cache(session, keys, prepared.policy)
            await cache.store(
                prepared.question,
                prepared.vector,
                self._cache_scope(prepared),
                answer,
                {d: prepared.versions[d] for d in cited if d in prepared.versions},
            )
        GROUNDEDNESS.labels(str(response.mode)).observe(response.grounded.score)

    async def _remember(
        self,
        sessions: ChatSessionService,
        row: ChatSession,
        prepared: ChatTurn,
        response: ChatResponse,
        audit: AuditLog,
    ) -> None:
        await sessions.append(row, "user", prepared.question)
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
            await self._audit_answer(audit, row, prepared, response)
        ANSWER_MODES.labels(str(response.mode), response.mode_reason).inc()
        log.info(
            "chat_answered",
            session_id=str(row.id),
            question_hash=_digest(self.secret, prepared.question),
            mode=str(response.mode),
            cache=response.cache,
            tier=response.model.tier,
            citations=len(response.citations),
        )
        if self.raw_debug:
            until = await raw_content_until(sessions.sessions.session, self.ctx)
            if until is not None:
                # The tenant admin's audited, time-bounded switch (chat.debug); off by default.
                raw_log.warning(
                    "chat_raw_content",
                    raw_content=True,
                    session_id=str(row.id),
                    question=prepared.question,
                    answer=response.answer,
                    until=until.isoformat(),
                )

    async def _audit_answer(
        self, audit: AuditLog, row: ChatSession, prepared: ChatTurn, response: ChatResponse
    ) -> None:
        await audit.record(
            AuditAction.CHAT_ANSWERED,
            resource_type=ResourceType.CHAT_SESSION,
            resource_id=row.id,
            detail={
                # Keyed hashes: equal questions match across events, the text never appears.
                "question_hash": _digest(self.secret, prepared.question),
                "answer_hash": _digest(self.secret, response.answer),
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

    async def _no_model(
        self,
        sessions: ChatSessionService,
        row: ChatSession,
        prepared: ChatTurn,
        text: str,
        reason: str,
    ) -> ChatResponse:
        response = ChatResponse(
            answer=text,
            citations=[],
            session_id=row.id,
            grounded=Grounded(1.0, [], []),
            usage=Usage(0, 0, 0.0),
            model=ModelInfo(None, None, reason),
            cache="miss",
            mode=AnswerMode.EXTRACTIVE,
            mode_reason=reason,
        )
        audit = AuditLog(sessions.sessions.session, self.ctx, request_id=self.request_id)
        await self._remember(sessions, row, prepared, response, audit)
        return response


def _cacheable(response: ChatResponse) -> dict[str, Any]:
    """The parts of a response a later hit replays (not the session, usage or cache fields)."""
    body: dict[str, Any] = msgspec.to_builtins(response)
    for key in ("session_id", "usage", "cache"):
        body.pop(key, None)
    return body


class ChatPolicyService:
    """The tenant's chat policy: read (defaults when never set) and replace (audited)."""

    def __init__(self, session: AsyncSession, ctx: TenantContext, audit: AuditLog) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit

    async def current(self) -> ChatPolicyBody:
        return await policy_of(self.session, self.ctx)

    async def replace(self, policy: ChatPolicyBody) -> ChatPolicyBody:
        body = msgspec.to_builtins(policy)
        await ChatPolicyRepository(self.session, self.ctx).put(body)
        # The hash of the policy as ``GET /v1/admin/chat`` returns it, in RFC 8785 canonical
        # JSON: anyone holding the policy can recompute it.
        canonical = canonical_json(body)
        await self.audit.record(
            AuditAction.CHAT_POLICY_UPDATED,
            resource_type=ResourceType.CHAT_POLICY,
            resource_id=None,
            detail={
                "mode": str(policy.mode),
                "cache_enabled": policy.cache_enabled,
                "policy_sha256": hashlib.sha256(canonical).hexdigest(),
            },
        )
        return policy


async def policy_of(session: AsyncSession, ctx: TenantContext) -> ChatPolicyBody:
    row = await ChatPolicyRepository(session, ctx).get()
    if row is None:
        return ChatPolicyBody()
    return msgspec.convert(row.policy, ChatPolicyBody)
