"""DLP services: scan text in each direction under the tenant's policy, guard against prompt
injection, record every trip, and manage the policy itself.

* ``DlpEngine`` is process-wide: the detector (spaCy model loaded once, lazily) and the key from
  which each tenant's hashing key derives. Detection runs in a worker thread
  (``asyncio.to_thread``) so the event loop keeps serving.
* ``DlpScanner`` applies one policy to texts: pure decisions, no I/O but the detector.
* ``DlpService`` is the request-level face the search (and the chat) calls: it loads the tenant's
  policy, scans, and records trips (Prometheus counter + audit event with types, counts and
  actions, never values).
* ``DlpPolicyService`` reads and replaces the policy (audited, ids and counts only).

Services never commit. The one exception is deliberate and documented on ``TripRecorder``: a
*blocked* request fails (and its unit of work rolls back), yet the trip must still be audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from dlp import injection
from dlp.errors import PersonalDataBlocked, PromptInjectionRefused
from dlp.metrics import count_trip
from dlp.models import DlpPolicyRow
from dlp.policies import (
    DEFAULT_POLICY,
    Action,
    Direction,
    DlpPolicy,
    policy_from_json,
    policy_json,
    validate,
)
from dlp.ports import DetectionRequest, Detector, Finding, Rewriter
from dlp.repositories import DlpPolicyRepository
from dlp.transform import PseudonymVault, normalise, replacement
from kernel.audit_events import AuditAction, ResourceType
from kernel.epochs import EpochCache
from kernel.tenancy import TenantContext
from residency.registry import RegionRegistry

_DIGITS = re.compile(r"[0-9]")


@lru_cache(maxsize=1)
def default_adapters() -> tuple[Detector, Rewriter]:
    """The Presidio adapters, one pair per process (the model itself loads on first use)."""
    from dlp.adapters.presidio import PresidioDetector, PresidioRewriter

    return PresidioDetector(), PresidioRewriter()


class DlpEngine:
    def __init__(self, detector: Detector, rewriter: Rewriter, secret: str) -> None:
        self.detector = detector
        self.rewriter = rewriter
        self._secret = secret.encode()
        # Each tenant's scanner, built from its policy as read under its epoch (``kernel.epochs``).
        self.scanners: EpochCache[DlpScanner] = EpochCache()

    @classmethod
    def default(cls, secret: str) -> DlpEngine:
        detector, rewriter = default_adapters()
        return cls(detector, rewriter, secret)

    def hash_key(self, tenant_id: uuid.UUID) -> bytes:
        """The tenant's HMAC key for ``hash``: equal values give equal tokens within a tenant,
        and tokens of two tenants never correlate."""
        return hmac.new(self._secret, b"bulwark-dlp-hash\x00" + tenant_id.bytes, "sha256").digest()

    async def detect(self, texts: Sequence[str], request: DetectionRequest) -> list[list[Finding]]:
        return await asyncio.to_thread(self.detector.detect, list(texts), request)


@dataclass(frozen=True, slots=True)
class Trip:
    """One kind of hit in one direction: an entity type or an injection kind, what was done."""

    kind: str
    action: str
    count: int = 1


# What the learned model alone reports (a decoded payload it judged included); any rule kind
# beside them makes the verdict the rules' (refused or stripped per policy).
LEARNED_ONLY = frozenset({injection.LEARNED, injection.ENCODED_PAYLOAD})


@dataclass(frozen=True, slots=True)
class Guarded:
    """A message the guard let through; ``suspected``: by the learned model alone."""

    suspected: bool


@dataclass(slots=True)
class InboundScan:
    """A user's message as the model, cache, retrieval and logs may see it; the vault restores
    pseudonyms for the requester; findings are counts per entity type."""

    text: str
    vault: PseudonymVault
    findings: dict[str, int]
    # The injection guard's learned model alone suspected the message (no rule matched): it is
    # answered only by quoting the sources, never by a model that could follow it.
    suspected: bool = False


@dataclass(slots=True)
class OutboundScan:
    text: str
    findings: dict[str, int]


@dataclass(slots=True)
class IngestScan:
    text: str
    # Entity types found under a ``tag`` action: the chunk needs clearance for them.
    tagged: frozenset[str]


@dataclass(slots=True)
class _Applied:
    text: str
    trips: Counter[tuple[str, str]] = field(default_factory=Counter)
    blocked: set[str] = field(default_factory=set)
    tagged: set[str] = field(default_factory=set)


class DlpScanner:
    """One tenant's policy applied to texts."""

    def __init__(self, engine: DlpEngine, policy: DlpPolicy, tenant_id: uuid.UUID) -> None:
        self.engine = engine
        self.policy = policy
        self.key = engine.hash_key(tenant_id)

    def request(self, direction: Direction) -> DetectionRequest:
        """Only the types the policy acts on in ``direction`` are looked for: a policy that
        needs no NER type in a direction never runs the NER model there."""
        active = {
            rule.entity_type: rule
            for rule in self.policy.entities
            if rule.action(direction) is not Action.ALLOW
        }
        return DetectionRequest(
            entities=frozenset(active),
            custom=tuple(c for c in self.policy.custom if c.entity_type in active),
            allow_list=self.policy.allow_list,
            min_score=min((r.threshold for r in active.values()), default=1.0),
        )

    def _apply(
        self,
        direction: Direction,
        text: str,
        findings: Sequence[Finding],
        *,
        vault: PseudonymVault | None = None,
        grounded: str | None = None,
    ) -> _Applied:
        applied = _Applied(text)
        chosen: list[Finding] = []
        values: dict[Finding, str] = {}
        for finding in findings:
            rule = self.policy.rule(finding.entity_type)
            if rule is None or finding.score < rule.threshold:
                continue
            action = rule.action(direction)
            if action is Action.ALLOW:
                continue
            value = text[finding.start : finding.end]
            if grounded is not None and _is_grounded(value, grounded):
                continue
            applied.trips[(finding.entity_type, action.value)] += 1
            if action is Action.BLOCK:
                applied.blocked.add(finding.entity_type)
                continue
            if action is Action.TAG:
                applied.tagged.add(finding.entity_type)
                continue
            new = replacement(action, finding.entity_type, value, key=self.key, vault=vault)
            if new is not None:
                chosen.append(finding)
                values[finding] = new
        if not applied.blocked and chosen:
            applied.text = self.engine.rewriter.rewrite(text, chosen, values)
        return applied

    async def inbound(self, text: str) -> tuple[InboundScan, _Applied]:
        findings = (await self.engine.detect([text], self.request("inbound")))[0]
        vault = PseudonymVault()
        applied = self._apply("inbound", text, findings, vault=vault)
        return InboundScan(applied.text, vault, _counts(applied)), applied

    async def outbound(
        self,
        answer: str,
        *,
        vault: PseudonymVault | None,
        asker_message: str,
        sources: Sequence[str],
    ) -> tuple[OutboundScan, _Applied]:
        grounded = normalise(
            " \n ".join([asker_message, *(vault.originals() if vault else []), *sources])
        )
        if _quoted_throughout(answer, grounded):
            # Every sentence repeats the asker's message or a cited source word for word: any
            # personal data in it is grounded, so the scan could change nothing. Skip it.
            text = vault.restore(answer) if vault is not None else answer
            return OutboundScan(text, {}), _Applied(answer)
        findings = (await self.engine.detect([answer], self.request("outbound")))[0]
        applied = self._apply("outbound", answer, findings, grounded=grounded)
        text = vault.restore(applied.text) if vault is not None else applied.text
        return OutboundScan(text, _counts(applied)), applied

    async def ingest(
        self, texts: Sequence[str]
    ) -> tuple[list[IngestScan], Counter[tuple[str, str]]]:
        request = self.request("ingest")
        if not request.entities and not request.custom:
            return [IngestScan(t, frozenset()) for t in texts], Counter()
        found = await self.engine.detect(texts, request)
        scans, trips = [], Counter[tuple[str, str]]()
        for text, findings in zip(texts, found, strict=True):
            applied = self._apply("ingest", text, findings)
            scans.append(IngestScan(applied.text, frozenset(applied.tagged)))
            trips.update(applied.trips)
        return scans, trips


_CITATION = re.compile(r"\s*\[\d{1,3}\]")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def _quoted_throughout(answer: str, grounded: str) -> bool:
    """Whether each sentence of ``answer`` (citation marks and end punctuation aside) occurs
    verbatim (case- and space-insensitively) in ``grounded``."""
    sentences = [s for s in _SENTENCE_SPLIT.split(_CITATION.sub("", answer)) if s.strip()]
    return bool(sentences) and all(
        normalise(sentence.strip().rstrip(".!?")) in grounded for sentence in sentences
    )


def _counts(applied: _Applied) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (kind, _), count in applied.trips.items():
        counts[kind] += count
    return dict(counts)


def _is_grounded(value: str, grounded: str) -> bool:
    """Does the asker's message or a cited source hold ``value`` (spacing/case aside; digits
    compared without formatting, so "+1 415 555 0100" matches "(415) 555-0100" only if equal)?"""
    if normalise(value) in grounded:
        return True
    digits = "".join(_DIGITS.findall(value))
    return len(digits) >= 6 and digits in "".join(_DIGITS.findall(grounded))


def trip_detail(direction: str, trips: Counter[tuple[str, str]]) -> dict[str, object]:
    """An audit detail for trips: kinds, actions and counts only (checked by the audit chain)."""
    return {
        "direction": direction,
        "trips": [
            {"kind": kind, "action": action, "count": count}
            for (kind, action), count in sorted(trips.items())
        ][:50],
    }


class TripRecorder:
    """Counts trips in Prometheus and records them in the tenant's audit chain.

    Normally the event joins the request's unit of work. A refusal is different: the request
    fails and its unit of work rolls back, yet a refused attempt is exactly what an auditor wants
    to see. So a refusing trip is written once the request's unit of work has ended (``after_end``:
    its locks released), in a short transaction of its own in the tenant's region. It holds
    kinds, actions and counts, never the text.
    """

    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        audit: AuditLog,
        registry: RegionRegistry,
        *,
        deferred: bool = False,
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit
        self.registry = registry
        # Deferred: trips that do not refuse are kept until ``flush`` appends them in a later
        # unit of work (a request scanning in a read-only transaction, writing in the next).
        self.deferred = deferred
        self._pending: list[dict[str, object]] = []

    async def flush(self, audit: AuditLog) -> None:
        """Append the deferred trips to ``audit``'s unit of work."""
        pending, self._pending = self._pending, []
        for detail in pending:
            await audit.record(
                AuditAction.DLP_TRIPPED,
                resource_type=ResourceType.DLP_POLICY,
                resource_id=None,
                detail=detail,
            )

    def count(self, direction: str, trips: Counter[tuple[str, str]]) -> None:
        for (kind, action), amount in trips.items():
            count_trip(str(self.ctx.tenant_id), direction, kind, action, amount)

    async def record(
        self, direction: str, trips: Counter[tuple[str, str]], *, refused: bool = False
    ) -> None:
        if not trips:
            return
        self.count(direction, trips)
        detail = trip_detail(direction, trips)
        if not refused and self.deferred:
            self._pending.append(detail)
            return
        if not refused:
            await self.audit.record(
                AuditAction.DLP_TRIPPED,
                resource_type=ResourceType.DLP_POLICY,
                resource_id=None,
                detail=detail,
            )
            return
        self.audit.record_refusal(
            self.registry,
            AuditAction.DLP_TRIPPED,
            resource_type=ResourceType.DLP_POLICY,
            resource_id=None,
            detail=detail,
        )


async def load_policy(session: AsyncSession, ctx: TenantContext) -> DlpPolicy:
    row = await DlpPolicyRepository(session, ctx).get()
    return DEFAULT_POLICY if row is None else policy_from_json(row.policy)


class DlpService:
    """The DLP steps of one request, under the tenant's policy."""

    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        engine: DlpEngine,
        recorder: TripRecorder,
        scanner: DlpScanner | None = None,
    ) -> None:
        """``scanner``: one already loaded earlier in the same request (one policy read)."""
        self.session = session
        self.ctx = ctx
        self.engine = engine
        self.recorder = recorder
        self._scanner = scanner

    async def scanner(self) -> DlpScanner:
        if self._scanner is None:
            self._scanner = self.engine.scanners.get(self.ctx)
        if self._scanner is None:
            policy = await load_policy(self.session, self.ctx)
            self._scanner = DlpScanner(self.engine, policy, self.ctx.tenant_id)
            self.engine.scanners.put(self.ctx, self._scanner)
        return self._scanner

    async def scan_inbound(
        self, text: str, *, started: Awaitable[tuple[InboundScan, _Applied]] | None = None
    ) -> InboundScan:
        """The user's message before cache, retrieval, model or logs see it. Raises
        ``PersonalDataBlocked`` (422, types only) when the policy blocks what it holds.
        ``started``: the scanner's work on ``text``, already under way (``screen_inbound``)."""
        scan, applied = await (
            started if started is not None else (await self.scanner()).inbound(text)
        )
        if applied.blocked:
            await self.recorder.record("inbound", applied.trips, refused=True)
            raise PersonalDataBlocked(applied.blocked)
        await self.recorder.record("inbound", applied.trips)
        return scan

    async def scan_outbound(
        self,
        answer: str,
        *,
        vault: PseudonymVault | None,
        asker_message: str,
        sources: Sequence[str],
    ) -> OutboundScan:
        """The model's answer as the requester may see it: personal data that is neither in the
        asker's own message nor in the sources cited to this asker is acted on per policy, then
        the requester's own pseudonyms are restored."""
        scan, applied = await (await self.scanner()).outbound(
            answer, vault=vault, asker_message=asker_message, sources=sources
        )
        if applied.blocked:
            await self.recorder.record("outbound", applied.trips, refused=True)
            raise PersonalDataBlocked(applied.blocked)
        await self.recorder.record("outbound", applied.trips)
        return scan

    async def screen_inbound(
        self, text: str, *, embedding: Awaitable[injection.Embedding] | None = None
    ) -> InboundScan | None:
        """A user's message through the injection guard, then the inbound scan: the scan, or
        None when the guard withholds the message (policy ``strip``). ``embedding``: the
        message's ``injection.embedding_model()`` vector, being computed (the chat path needs it
        for retrieval anyway); the guard waits for it, while the scanner's detection runs beside
        both. Nothing of the scan is recorded or acted on before the guard has let the message
        through, so a refusal reads as it would have without the scan."""
        scanning = asyncio.ensure_future((await self.scanner()).inbound(text))
        try:
            vector = None if embedding is None else await embedding
            guarded = await self._guard(text, vector)
        except BaseException:
            scanning.cancel()
            await asyncio.gather(scanning, return_exceptions=True)
            raise
        if guarded is None:
            scanning.cancel()
            await asyncio.gather(scanning, return_exceptions=True)
            return None
        scan = await self.scan_inbound(text, started=scanning)
        scan.suspected = guarded.suspected
        return scan

    # -- injection guard ---------------------------------------------------------------------
    async def guard_user_message(
        self, text: str, *, embedding: injection.Embedding | None = None
    ) -> str | None:
        """The message, or None when it must be answered without it (policy ``strip``); raises
        ``PromptInjectionRefused`` (policy ``refuse``). ``embedding``: see ``screen_inbound``.
        A message only the learned model suspects passes (the trip is recorded): a search query
        reaches no model."""
        guarded = await self._guard(text, embedding)
        return None if guarded is None else text

    async def _guard(self, text: str, embedding: injection.Embedding | None) -> Guarded | None:
        policy = (await self.scanner()).policy.injection
        kinds = injection.detect(text, allowed_hosts=policy.allowed_hosts, embedding=embedding)
        if not kinds:
            return Guarded(suspected=False)
        if LEARNED_ONLY.issuperset(kinds):
            # A statistical verdict, wrong on some plain questions ("training budget line
            # approval"): the message is not refused, but it is answered only by quoting the
            # sources (no generation that could follow it), and the trip is recorded.
            await self.recorder.record(
                "inbound", Counter({(kind, "extractive"): 1 for kind in kinds})
            )
            return Guarded(suspected=True)
        action: str = policy.user_message
        trips: Counter[tuple[str, str]] = Counter({(kind, action): 1 for kind in kinds})
        if action == "refuse":
            await self.recorder.record("inbound", trips, refused=True)
            raise PromptInjectionRefused(kinds)
        await self.recorder.record("inbound", trips)
        return None

    async def guard_chunks(self, chunks: Sequence[str]) -> list[str | None]:
        """Retrieved chunks as they may enter a prompt: a flagged chunk is left out (None) or,
        per policy, quoted as inert data without the sentences that carry the instruction."""
        policy = (await self.scanner()).policy.injection
        result: list[str | None] = []
        trips: Counter[tuple[str, str]] = Counter()
        for chunk in chunks:
            kinds = injection.detect(chunk, allowed_hosts=policy.allowed_hosts)
            if not kinds:
                result.append(chunk)
                continue
            trips.update((kind, policy.chunks) for kind in kinds)
            inert = (
                injection.strip_instructions(chunk, allowed_hosts=policy.allowed_hosts)
                if policy.chunks == "wrap"
                else None
            )
            # Wrapped, the sentences that carry the instruction are gone and the rest is quoted
            # as data; when the instruction cannot be told apart from its chunk, the chunk goes.
            result.append(None if inert is None else injection.quote_as_data(inert))
        await self.recorder.record("retrieved", trips)
        return result

    async def guard_output(self, answer: str, *, system_prompt: str | None) -> str:
        """The answer with links/images only to allow-listed hosts, and no system prompt."""
        policy = (await self.scanner()).policy.injection
        checked = injection.check_output(
            answer, system_prompt=system_prompt, allowed_hosts=policy.allowed_hosts
        )
        await self.recorder.record(
            "outbound", Counter({(kind, "removed"): 1 for kind in checked.kinds})
        )
        return checked.text


class DlpPolicyService:
    def __init__(
        self, repository: DlpPolicyRepository, audit: AuditLog, detector: Detector
    ) -> None:
        self.repository = repository
        self.audit = audit
        self.detector = detector
        self.supported = detector.supported_entities

    async def current(self) -> tuple[DlpPolicy, DlpPolicyRow | None]:
        row = await self.repository.get()
        return (DEFAULT_POLICY if row is None else policy_from_json(row.policy)), row

    async def replace(self, policy: DlpPolicy) -> DlpPolicyRow:
        validate(policy, self.supported, compiles=self.detector.compiles)
        row = await self.repository.get()
        if row is None:
            row = await self.repository.add(DlpPolicyRow(policy=policy_json(policy), version=1))
        else:
            row.policy = policy_json(policy)
            row.version += 1
            await self.repository.flush()
        await self.audit.record(
            AuditAction.DLP_POLICY_UPDATED,
            resource_type=ResourceType.DLP_POLICY,
            resource_id=str(self.repository.ctx.tenant_id),
            detail={
                "version": row.version,
                "entities": len(policy.entities),
                "custom": len(policy.custom),
                "allow_list": len(policy.allow_list),
                # Which policy is in force, comparable across events; the terms stay out.
                "digest": hashlib.sha256(
                    json.dumps(policy_json(policy), sort_keys=True).encode()
                ).hexdigest(),
            },
        )
        return row


class IngestScrubber:
    """The DLP step of one ingestion job (``retrieval.index.ChunkScrubber``): scans chunk texts
    in one batch, and keeps what the job's outcome records: the trips and the tagged types."""

    def __init__(self, scanner: DlpScanner) -> None:
        self.scanner = scanner
        self.tag_classification = scanner.policy.tag_classification
        self.trips: Counter[tuple[str, str]] = Counter()
        self.tagged: set[str] = set()

    async def scrub(self, texts: list[str]) -> list[tuple[str, frozenset[str]]]:
        scans, trips = await self.scanner.ingest(texts)
        self.trips.update(trips)
        for scan in scans:
            self.tagged.update(scan.tagged)
        return [(scan.text, scan.tagged) for scan in scans]


async def record_ingest_trips(
    session: AsyncSession, ctx: TenantContext, document_id: uuid.UUID, scrubber: IngestScrubber
) -> None:
    """Count and audit an ingestion's trips, in the job's outcome transaction."""
    if not scrubber.trips:
        return
    for (kind, action), amount in scrubber.trips.items():
        count_trip(str(ctx.tenant_id), "ingest", kind, action, amount)
    await AuditLog(session, ctx).record(
        AuditAction.DLP_TRIPPED,
        resource_type=ResourceType.DOCUMENT,
        resource_id=document_id,
        detail=trip_detail("ingest", scrubber.trips),
    )
