"""Subject-access requests: find everything about a person, and erase it.

A request names a subject by user id, email or external id; it is resolved to the user id once,
and from then on the request holds ids and counts only (its findings and report are sealed with
the tenant's keys). Finding walks every store: the user record and its memberships, API keys
and sessions, chat sessions and messages, documents the subject uploaded (their chunks in the
vector store and originals in the object store), semantic-cache entries created from their
questions, usage records and counters, and audit events by or about them.

Erasure runs as a job, step by step; each step is idempotent and recorded when it committed,
so an erasure interrupted midway completes when it runs again, with the same report (the
findings are taken once, before the first step). The audit log stays append-only and
verifiable: the subject's events remain, and erasing the subject's pseudonym secret makes them
impossible to link back to the person. The report is signed with the deployment's Ed25519 key.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit import pseudonyms
from audit.canon import versioned
from audit.models import AuditEvent
from audit.repositories import AuditSubjectRepository
from audit.services import AuditLog
from audit.signing import CheckpointSigner
from auth.models import ApiKey, UserSession
from chat.models import ChatMessage, ChatSession
from chat.sessions import MESSAGE_KIND
from compliance.errors import SubjectNotFound
from compliance.models import SarRequest
from compliance.repositories import SarRepository, SubjectDataRepository
from compliance.retention import RetentionService
from gateway.models import RateWindow, UsageCounter, UsageRecord
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.jobs.models import Job
from kernel.jobs.repositories import JobRepository
from kernel.tenancy import TenantContext
from keys.services import Keyring, TenantKeys
from residency.objects import TenantObjects
from residency.registry import RegionRegistry
from retrieval.cache.invalidation import drop_entries
from retrieval.cache.services import ANSWER_KIND, QUESTION_KIND
from retrieval.index import KnowledgeIndex
from retrieval.models import CacheEntry, Document

SAR_JOB = "sar"
FINDINGS_KIND = "sar-findings"
REPORT_KIND = "sar-report"
# The order erasure runs in: what points at the person goes before the person.
ERASURE_STEPS = (
    "cache",
    "chat",
    "documents",
    "usage",
    "identity",
    "audit_pseudonym",
)


_HIDDEN = frozenset({"secret_hash", "tenant_id"})


def _plain(row: Any) -> dict[str, Any]:
    """A row's columns as JSON-ready values; sealed blobs and secret hashes left out."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in _HIDDEN or column.key.startswith("sealed_"):
            continue
        value = getattr(row, column.key)
        out[column.key] = str(value) if isinstance(value, uuid.UUID | datetime) else value
    return out


class SarService:
    """Subject-access requests of one tenant, for a compliance officer (or the operator CLI)."""

    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        keys: TenantKeys,
        audit: AuditLog,
        *,
        pepper: str,
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.keys = keys
        self.audit = audit
        self.requests = SarRepository(session, ctx)
        self.data = SubjectDataRepository(session, ctx)
        self._pepper = pepper.encode()

    def retention(self) -> RetentionService:
        return RetentionService(self.session, self.ctx, self.audit)

    def reference_hash(self, kind: str, value: str) -> str:
        message = f"{self.ctx.tenant_id}\x00{kind}\x00{value.lower()}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    async def resolve(
        self, *, user_id: uuid.UUID | None, email: str | None, external_id: str | None
    ) -> tuple[uuid.UUID, str]:
        """The subject's user id, and a keyed hash of the reference given (never the value)."""
        user = None
        reference = ""
        if user_id is not None:
            user = await self.data.user(user_id)
            reference = self.reference_hash("user_id", str(user_id))
        elif email is not None:
            user = await self.data.by_email(email)
            reference = self.reference_hash("email", email)
        elif external_id is not None:
            user = await self.data.by_external_id(external_id)
            reference = self.reference_hash("external_id", external_id)
        if user is None:
            raise SubjectNotFound()
        return user.id, reference

    async def submit(
        self, kind: str, subject_id: uuid.UUID, reference: str, document_policy: str
    ) -> tuple[SarRequest, Job]:
        job = await JobRepository(self.session, self.ctx).add(
            Job(id=uuid.uuid4(), kind=SAR_JOB, document_id=None, document_version=0)
        )
        request = await self.requests.add(
            SarRequest(
                id=uuid.uuid4(),
                kind=kind,
                job_id=job.id,
                subject_id=subject_id,
                reference_hash=reference,
                document_policy=document_policy,
                status="queued",
                steps_done=[],
                meta={},
            )
        )
        await self.audit.record(
            AuditAction.SAR_REQUESTED,
            resource_type=ResourceType.SAR_REQUEST,
            resource_id=request.id,
            detail={"kind": kind, "document_policy": document_policy, "job_id": job.id},
        )
        return request, job

    async def get(self, request_id: uuid.UUID) -> SarRequest | None:
        return await self.requests.get(request_id)

    async def report(self, request: SarRequest) -> dict[str, Any] | None:
        if request.sealed_report is None:
            return None
        opened = await self.keys.open(REPORT_KIND, str(request.id), request.sealed_report)
        report: dict[str, Any] = json.loads(opened)
        return report

    # --- access export ---------------------------------------------------------------------

    async def export(self, request: SarRequest, objects: TenantObjects) -> bytes:
        """The access bundle: a zip of JSON files (content opened with the tenant's keys) for
        every item the report lists, and the signed report itself."""
        report = await self.report(request)
        assert report is not None
        stores = report["stores"]
        data = self.data
        files: dict[str, Any] = {
            "report.json": {"report": report, "signature": request.signature},
        }
        user = await data.user(request.subject_id)
        files["user.json"] = _plain(user) if user else None
        groups = await data.groups_of(stores["memberships"]["ids"])
        files["memberships.json"] = [
            {"group_id": g, "group_name": groups.get(g)} for g in stores["memberships"]["ids"]
        ]
        files["api_keys.json"] = [
            _plain(k) for k in await data.rows(ApiKey, stores["api_keys"]["ids"])
        ]
        files["sessions.json"] = [
            _plain(r) for r in await data.rows(UserSession, stores["sessions"]["ids"])
        ]
        chats = []
        messages = await data.rows(ChatMessage, stores["chat_messages"]["ids"])
        for chat in await data.rows(ChatSession, stores["chat_sessions"]["ids"]):
            chats.append(
                {
                    **_plain(chat),
                    "title": (
                        await self.keys.open("chat-title", str(chat.id), chat.sealed_title)
                    ).decode(),
                    "messages": [
                        {
                            **_plain(m),
                            "content": (
                                await self.keys.open(MESSAGE_KIND, str(m.id), m.sealed_content)
                            ).decode(),
                        }
                        for m in sorted(messages, key=lambda m: m.seq)
                        if m.session_id == chat.id
                    ],
                }
            )
        files["chat.json"] = chats
        documents = []
        for document in await data.rows(Document, stores["documents"]["ids"]):
            title = await self.keys.open("document-title", str(document.id), document.sealed_title)
            documents.append({**_plain(document), "title": title.decode()})
            for version in range(1, document.version + 1):
                key = f"{document.id.hex}-v{version}"
                files[f"documents/{key}.bin"] = await objects.get("document", key)
        files["documents.json"] = documents
        entries = []
        for entry in await data.rows(CacheEntry, stores["cache_entries"]["ids"]):
            question = await self.keys.open(QUESTION_KIND, str(entry.id), entry.sealed_question)
            answer = await self.keys.open(ANSWER_KIND, str(entry.id), entry.sealed_answer)
            entries.append(
                {**_plain(entry), "question": question.decode(), "answer": json.loads(answer)}
            )
        files["cache_entries.json"] = entries
        files["usage_records.json"] = [
            _plain(r) for r in await data.rows(UsageRecord, stores["usage_records"]["ids"])
        ]
        files["usage_counters.json"] = [
            _plain(r) for r in await data.rows(UsageCounter, stores["usage_counters"]["ids"])
        ]
        files["rate_windows.json"] = [
            _plain(r) for r in await data.rows(RateWindow, stores["rate_windows"]["ids"])
        ]
        files["audit_events.json"] = [
            _plain(e) for e in await data.rows(AuditEvent, stores["audit_events"]["ids"])
        ]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, content in files.items():
                payload = (
                    content
                    if isinstance(content, bytes)
                    else json.dumps(content, indent=2, default=str).encode()
                )
                bundle.writestr(name, payload)
        return buffer.getvalue()

    # --- finding ---------------------------------------------------------------------------

    async def find(self, subject_id: uuid.UUID, knowledge: KnowledgeIndex) -> dict[str, Any]:
        """Counts and ids of the subject's data in every store."""
        subject = pseudonyms.user_subject(subject_id)
        secret = await AuditSubjectRepository(self.session, self.ctx).secret(subject)
        actor = pseudonyms.pseudonym(secret, subject) if secret else None
        user = await self.data.user(subject_id)
        chats = await self.data.chat_sessions(subject_id)
        documents = await self.data.documents(subject_id)
        chunks = 0
        for document in documents:
            chunks += await knowledge.count(self.ctx, document.id)
        stores: dict[str, dict[str, Any]] = {
            "user": {"ids": [str(subject_id)] if user else []},
            "memberships": {"ids": await self.data.memberships(subject_id)},
            "api_keys": {"ids": await self.data.api_keys(subject_id)},
            "sessions": {"ids": await self.data.sessions(subject_id)},
            "chat_sessions": {"ids": chats},
            "chat_messages": {"ids": await self.data.chat_messages(chats)},
            "documents": {"ids": [str(d.id) for d in documents]},
            "document_chunks": {"count": chunks},
            "document_objects": {"count": sum(d.version for d in documents)},
            "cache_entries": {"ids": await self.data.cache_entries(subject_id)},
            "usage_records": {"ids": await self.data.usage_records(subject_id)},
            "usage_counters": {"ids": await self.data.counters(subject)},
            "rate_windows": {"ids": await self.data.rate_windows(subject)},
            "audit_events": {"ids": await self.data.audit_events(actor, subject_id)},
        }
        for store in stores.values():
            store.setdefault("count", len(store.get("ids", [])))
        return {
            "stores": stores,
            "document_versions": {str(d.id): d.version for d in documents},
            "audit_pseudonym": bool(secret),
        }


class SarRunner:
    """The SAR job: take the findings once, then (for erasure) run the remaining steps, each in
    its own transaction, and seal and sign the report."""

    def __init__(
        self,
        registry: RegionRegistry,
        keyring: Keyring,
        knowledge: KnowledgeIndex,
        objects: Callable[[AsyncSession, TenantContext], TenantObjects],
        signer: CheckpointSigner,
        pepper: str,
        *,
        settled: Callable[[], Awaitable[None]] | None = None,
        interrupt: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.keyring = keyring
        self.knowledge = knowledge
        self.objects = objects
        self.signer = signer
        self.pepper = pepper
        # Waits for this process's pending model-call settlements, so usage and its audit
        # events are in the findings.
        self.settled = settled
        # Tests simulate a crash between two steps with this hook.
        self.interrupt = interrupt

    def _service(self, session: AsyncSession, ctx: TenantContext) -> SarService:
        keys = self.keyring.for_tenant(session, ctx)
        return SarService(session, ctx, keys, AuditLog(session, ctx), pepper=self.pepper)

    async def __call__(self, ctx: TenantContext, job: Job) -> None:
        if self.settled is not None:
            await self.settled()
        async with self.registry.tenant_transaction(ctx) as session:
            service = self._service(session, ctx)
            request = await service.requests.of_job(job.id)
            if request is None or request.status == "done":
                return
            request_id = request.id
            request.status = "running"
            if request.sealed_findings is None:
                findings = await service.find(request.subject_id, self.knowledge)
                request.sealed_findings = await service.keys.seal(
                    "sar-findings", str(request.id), json.dumps(findings).encode()
                )
            kind, subject_id = request.kind, request.subject_id
        if kind == "erasure":
            for step in ERASURE_STEPS:
                await self._step(ctx, request_id, subject_id, step)
            # No older page image of the deleted rows may survive in SQLite's WAL.
            await self.registry.region(ctx.region).database.scrub()
        await self._finish(ctx, request_id)

    async def _step(
        self, ctx: TenantContext, request_id: uuid.UUID, subject_id: uuid.UUID, step: str
    ) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            service = self._service(session, ctx)
            request = await service.get(request_id)
            assert request is not None
            if step in request.steps_done:
                return
            if self.interrupt is not None:
                await self.interrupt(step)
            await self._erase(session, ctx, service, request, subject_id, step)
            request.steps_done = [*request.steps_done, step]

    async def _erase(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        service: SarService,
        request: SarRequest,
        subject_id: uuid.UUID,
        step: str,
    ) -> None:
        data = service.data
        subject = pseudonyms.user_subject(subject_id)
        if step == "cache":
            entries = await data.cache_entries(subject_id)
            questions = await self.knowledge.questions(ctx)
            await drop_entries(session, ctx, questions, [uuid.UUID(e) for e in entries])
        elif step == "chat":
            await data.delete_chat(await data.chat_sessions(subject_id))
        elif step == "documents":
            documents = await data.documents(subject_id)
            if request.document_policy == "reassign":
                await data.reassign_documents([d.id for d in documents])
                return
            objects = self.objects(session, ctx)
            for document in documents:
                await self.knowledge.delete(ctx, document.id)
                for version in range(1, document.version + 1):
                    await objects.delete("document", f"{document.id.hex}-v{version}")
                await session.delete(document)
        elif step == "usage":
            await data.anonymize_usage(subject_id, subject)
        elif step == "identity":
            await data.delete_identity(subject_id)
        elif step == "audit_pseudonym":
            await data.destroy_audit_secret(subject)

    async def _finish(self, ctx: TenantContext, request_id: uuid.UUID) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            service = self._service(session, ctx)
            request = await service.get(request_id)
            assert request is not None
            assert request.sealed_findings is not None
            findings = json.loads(
                await service.keys.open("sar-findings", str(request.id), request.sealed_findings)
            )
            erasure = request.kind == "erasure"
            action = {
                "documents": "reassigned" if request.document_policy == "reassign" else "deleted",
                "usage_records": "anonymized",
                "audit_events": "unlinked (pseudonym secret destroyed; chain intact)",
            }
            stores = {
                name: {
                    **found,
                    **({"action": action.get(name, "deleted")} if erasure else {}),
                }
                for name, found in findings["stores"].items()
            }
            report = versioned(
                {
                    "request_id": str(request.id),
                    "tenant_id": str(ctx.tenant_id),
                    "kind": request.kind,
                    "subject_reference_sha256": request.reference_hash,
                    "requested_at": request.created_at.isoformat(),
                    "stores": stores,
                    "signing_key": self.signer.public_key_b64,
                    "signing_key_id": self.signer.key_id,
                }
            )
            # The sealed report is exactly the signed bytes (RFC 8785, ``canon`` 2; reports
            # signed before have no ``canon`` and the legacy encoding, see ``audit.canon``).
            canonical, request.signature = self.signer.sign(report)
            request.sealed_report = await service.keys.seal(REPORT_KIND, str(request.id), canonical)
            request.status = "done"
            request.finished_at = utcnow()
            await service.audit.record(
                AuditAction.SAR_COMPLETED,
                resource_type=ResourceType.SAR_REQUEST,
                resource_id=request.id,
                detail={
                    "kind": request.kind,
                    "stores": {k: int(v.get("count", 0)) for k, v in stores.items()},
                    "report_sha256": hashlib.sha256(canonical).hexdigest(),
                },
            )

    async def failed(self, ctx: TenantContext, job: Job) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            request = await SarRepository(session, ctx).of_job(job.id)
            if request is not None and request.status != "done":
                request.status = "failed"
                request.error = job.error_code
