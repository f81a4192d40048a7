"""One chat request's state, and what every stage of the pipeline is given.

``ChatTurn`` is what the stages (``chat.pipeline``) establish for one request, in memory only;
``ChatDeps`` holds the request's collaborators and opens its short regional transactions
(``Unit``). No database transaction stays open while a model generates: the steps before the
model run in one, the steps after it in another (docs/ARCHITECTURE.md, "The path of a chat
request").
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from chat.judge import AnswerJudge
from chat.schemas import AnswerMode, ChatPolicyBody, ChatRequest
from chat.workflows import Generation
from dlp import injection
from dlp.services import DlpEngine, DlpScanner, DlpService, TripRecorder
from dlp.transform import PseudonymVault
from gateway.services import Caller, GatewayService, Settlement
from gateway.services import PreparedCall as Admission
from kernel.epochs import EpochCache
from kernel.tenancy import TenantContext
from keys.services import Keyring, TenantKeys
from residency.registry import RegionRegistry
from retrieval.embeddings import Embedder
from retrieval.index import KnowledgeIndex, Passage


@dataclass(frozen=True, slots=True)
class Unit:
    """One short writing transaction in the tenant's region: its session, the tenant's keys
    on it, and the audit log appending to it."""

    session: AsyncSession
    keys: TenantKeys
    audit: AuditLog


@dataclass(frozen=True, slots=True)
class ChatDeps:
    """The collaborators of one principal's chat request (``ChatService`` builds them)."""

    ctx: TenantContext
    registry: RegionRegistry
    keyring: Keyring
    knowledge: KnowledgeIndex
    gateway: GatewayService
    dlp_engine: DlpEngine
    # The deployment's pepper: the key of the question and answer hashes in logs and audit.
    secret: bytes
    request_id: str | None
    judge: AnswerJudge | None
    # The tenant admin's audited, time-bounded raw-content switch may apply (``chat.debug``).
    raw_debug: bool
    # The process's chat policies, kept under each tenant's epoch.
    policies: EpochCache[ChatPolicyBody]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction, refused up front unless the tenant's key works. It holds
        no write lock (SQLite has one per database, which every ingestion, settlement and
        audit append of the region waits for)."""
        async with self.registry.tenant_transaction(self.ctx, read_only=True) as session:
            await self.keyring.for_tenant(session, self.ctx).require_usable()
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Unit]:
        """A short writing transaction (the request's first already checked the tenant's key;
        sealing fails closed on its own)."""
        async with self.registry.tenant_transaction(self.ctx) as session:
            keys = self.keyring.for_tenant(session, self.ctx)
            yield Unit(session, keys, self.audit_log(session))

    def audit_log(self, session: AsyncSession) -> AuditLog:
        return AuditLog(session, self.ctx, request_id=self.request_id)

    def dlp(
        self,
        session: AsyncSession,
        audit: AuditLog,
        scanner: DlpScanner | None = None,
        *,
        deferred: bool = False,
    ) -> DlpService:
        recorder = TripRecorder(session, self.ctx, audit, self.registry, deferred=deferred)
        return DlpService(session, self.ctx, self.dlp_engine, recorder, scanner)

    def sentence_vectors(self) -> Embedder:
        return self.knowledge.sentences.for_tenant(str(self.ctx.tenant_id))

    def caller(self) -> Caller:
        return Caller.of(self.ctx, self.request_id, route="chat")


@dataclass(slots=True)
class ChatTurn:
    """What the stages established for one request (in memory only)."""

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
    mode: AnswerMode = AnswerMode.GENERATIVE
    mode_reason: str = "tenant_policy"
    # The prompt, and its first model call as admitted in the request's first writing
    # transaction (``generate.admit``); ``exhausted``: a quota refused it.
    messages: list[dict[str, str]] | None = None
    admitted: Admission | None = None
    exhausted: bool = False
    # Tokens of prompt the models this answer may go to can take (``GatewayService.prompt_room``).
    room: int | None = None
    # Model calls paid for an answer that was not delivered (the gate refused it): their usage
    # is reported with the extractive answer that replaced it.
    spent: Generation | None = None
    # When the tier's time budget (``ChatPolicyBody.time_budget``) for this answer runs out.
    deadline: float | None = None
    # Model calls of this answer not yet in the ledger: recorded in the answer's closing
    # transaction (one write, no second transaction racing it for SQLite's lock), or in the
    # background if the answer fails before that commits (``record.settle``).
    unsettled: list[Settlement] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return [p.text for p in self.passages]

    @property
    def quotable(self) -> list[str]:
        """The passages as an extractive answer may quote them: a chunk the injection guard
        wrapped, without its wrapper (the sentences that carried the instruction are gone)."""
        return [injection.quoted_body(text) for text in self.sources]

    @property
    def asked(self) -> str:
        """The question as the evidence test and extraction read it: with the asker's own
        pseudonymised names put back (in memory only; the sentences chosen come from the
        sources, never from the question)."""
        if self.vault is None:
            return self.question
        return self.vault.restore(self.question)

    @property
    def contexts(self) -> list[str]:
        """Each passage's document title and heading path (what its sentences are about)."""
        return [
            " ".join([self.titles.get(p.document_id, ""), *p.heading_path]) for p in self.passages
        ]

    @property
    def reasoning(self) -> str | None:
        """The routing hint of a fanned-out question: its reduce step asks for "high"
        reasoning (the router then picks the highest tier the tenant's policy allows)."""
        return "high" if self.parts > 1 else None
