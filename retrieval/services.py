"""Documents: upload, versions, access rules, deletion — and the search over them.

Every read is checked against the document ACL: the vector search with the ABAC filter compiled
into the query (``retrieval.acl`` / ``retrieval.vectorstore``), and the document endpoints with
the same reference policy over the tenant's rows. Another tenant's document, or one the caller
may not read, is simply not found (404).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from dlp.services import (
    DlpEngine,
    DlpScanner,
    DlpService,
    IngestScrubber,
    load_policy,
    record_ingest_trips,
)
from kernel.audit_events import AuditAction, ResourceType
from kernel.errors import Forbidden, NotFound
from kernel.jobs.models import Job
from kernel.jobs.repositories import JobRepository
from kernel.jobs.runner import JobRunner, PermanentJobError
from kernel.jobs.schemas import JobStatus
from kernel.tenancy import Role, TenantContext
from keys.services import Keyring, TenantKeys
from residency.database import after_commit
from residency.objects import TenantObjects
from residency.registry import RegionRegistry
from retrieval.acl import DocumentAcl, may_read, with_pii
from retrieval.cache.invalidation import drop_answers_citing
from retrieval.errors import UnparseableDocument, UnsupportedMediaType
from retrieval.index import INDEX_VERSION, KnowledgeIndex, Passage
from retrieval.models import Document
from retrieval.repositories import DocumentRepository
from retrieval.schemas import AclSpec

INGEST = "ingest"
REINDEX = "reindex"
# Text sent as JSON is read as Markdown (plain prose is valid Markdown).
TEXT_MEDIA_TYPE = "text/markdown"


class DocumentNotFound(NotFound):
    code = "document_not_found"
    title = "Document not found"

    def __init__(self) -> None:
        super().__init__("No such document readable by you in this tenant.")


class JobNotFound(NotFound):
    code = "job_not_found"
    title = "Job not found"

    def __init__(self) -> None:
        super().__init__("No such job in this tenant.")


class NotTenantAdmin(Forbidden):
    code = "not_tenant_admin"
    title = "Tenant admins only"

    def __init__(self) -> None:
        super().__init__("Only a tenant admin may re-index the tenant's documents.")


class NotDocumentOwner(Forbidden):
    code = "not_document_owner"
    title = "Not the document's owner"

    def __init__(self) -> None:
        super().__init__("Only the document's owner or a tenant admin may do this.")


def document_acl(document: Document, *, with_pii_tags: bool = True) -> DocumentAcl:
    """The document's ACL; with the PII clearance its DLP tags require (``acl["pii"]``: the
    types found at ingest under a ``tag`` policy), unless asked for the ACL as set."""
    acl = document.acl
    base = DocumentAcl(
        visibility=acl.get("visibility", "restricted"),
        groups=tuple(acl.get("groups", ())),
        users=tuple(acl.get("users", ())),
        classification=int(acl.get("classification", 0)),
        attributes={k: tuple(v) for k, v in acl.get("attributes", {}).items()},
        owner=acl.get("owner"),
    )
    pii = acl.get("pii")
    if not with_pii_tags or not pii:
        return base
    return with_pii(base, pii.get("types", ()), pii.get("classification"))


def acl_json(spec: AclSpec | None, owner: uuid.UUID | None) -> dict[str, Any]:
    """The stored form of an ACL; no ACL means: only the uploader."""
    if spec is None:
        acl = DocumentAcl.owner_only(owner) if owner else DocumentAcl()
    else:
        acl = DocumentAcl(
            visibility=spec.visibility.value,
            groups=tuple(str(g) for g in spec.groups),
            users=tuple(str(u) for u in spec.users),
            classification=spec.classification,
            attributes={k: tuple(v) for k, v in spec.attributes.items()},
            owner=str(owner) if owner else None,
        )
    return {
        "visibility": acl.visibility,
        "groups": list(acl.groups),
        "users": list(acl.users),
        "classification": acl.classification,
        "attributes": {k: list(v) for k, v in acl.attributes.items()},
        "owner": acl.owner,
    }


class Upload:
    """What a caller sends: content and its description, whichever way it came (JSON or file)."""

    def __init__(
        self,
        *,
        title: str,
        content: bytes,
        media_type: str,
        external_id: str | None = None,
        source_uri: str | None = None,
        metadata: dict[str, str] | None = None,
        acl: AclSpec | None = None,
    ) -> None:
        self.title, self.content, self.media_type = title, content, media_type
        self.external_id, self.source_uri = external_id, source_uri
        self.metadata, self.acl = metadata or {}, acl


class DocumentService:
    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        keys: TenantKeys,
        objects: TenantObjects,
        index: KnowledgeIndex,
        jobs: JobRunner,
        audit: AuditLog,
        dlp: DlpService,
    ) -> None:
        self.session = session
        self.dlp = dlp
        self.ctx = ctx
        self.keys = keys
        self.objects = objects
        self.index = index
        self.jobs = jobs
        self.audit = audit
        self.documents = DocumentRepository(session, ctx)
        self.job_rows = JobRepository(session, ctx)

    # -- writes ----------------------------------------------------------------------------
    async def submit(self, upload: Upload) -> tuple[Document, Job | None, bool]:
        """Store a new document or version and queue its ingestion. The same content again is
        no new work; the same external id with new content is a new version."""
        digest = hashlib.sha256(upload.content).hexdigest()
        if upload.external_id:
            existing = await self.documents.by_external_id(upload.external_id)
        else:
            # Identical content only counts when the caller owns or may read that document:
            # another person's identical upload is never revealed (this copy is ingested).
            existing = next(
                (
                    d
                    for d in await self.documents.by_content_hash(digest)
                    if d.owner_id == self.ctx.user_id or self.may_read(d)
                ),
                None,
            )
        if existing is not None and existing.content_hash == digest:
            return existing, None, True
        if existing is not None:
            self._require_owner_or_admin(existing)
            document = existing
            document.version += 1
            await self._drop_cached_answers(document.id)
        else:
            document = Document(
                id=uuid.uuid4(),
                owner_id=self.ctx.user_id,
                version=1,
                external_id=upload.external_id,
            )
        document.sealed_title = await self.keys.seal(
            "document-title", str(document.id), upload.title.encode()
        )
        document.sealed_source_uri = (
            await self.keys.seal("document-source", str(document.id), upload.source_uri.encode())
            if upload.source_uri
            else None
        )
        document.media_type, document.size_bytes = upload.media_type, len(upload.content)
        document.content_hash, document.status = digest, "processing"
        document.meta = dict(upload.metadata)
        if existing is None or upload.acl is not None:
            document.acl = acl_json(upload.acl, self.ctx.user_id)
        if existing is None:
            await self.documents.add(document)
        await self.objects.put("document", f"{document.id.hex}-v{document.version}", upload.content)
        job = await self.job_rows.add(
            Job(
                id=uuid.uuid4(),
                kind=INGEST,
                document_id=document.id,
                document_version=document.version,
                status=JobStatus.QUEUED,
            )
        )
        await self.audit.record(
            AuditAction.DOCUMENT_UPLOADED,
            resource_type=ResourceType.DOCUMENT,
            resource_id=document.id,
            detail={"version": document.version, "size": document.size_bytes, "job_id": job.id},
        )
        tenant_id, job_id = self.ctx.tenant_id, job.id
        after_commit(self.session, lambda: self.jobs.enqueue(tenant_id, job_id))
        return document, job, False

    async def reindex(self) -> tuple[Job, bool]:
        """Queue the rebuilding of every document's vectors whose index text is older than
        this release's (``INDEX_VERSION``): a tenant admin's job, one at a time per tenant —
        asked again while one is open, the open one is returned (``False``: not new)."""
        if not self.ctx.has_role(Role.TENANT_ADMIN):
            raise NotTenantAdmin()
        current = await self.job_rows.open_of_kind(REINDEX)
        if current is not None:
            return current, False
        total = await self.documents.count_stale(INDEX_VERSION)
        job = await self.job_rows.add(
            Job(id=uuid.uuid4(), kind=REINDEX, status=JobStatus.QUEUED, done=0, total=total)
        )
        await self.audit.record(
            AuditAction.DOCUMENTS_REINDEX_REQUESTED,
            resource_type=ResourceType.TENANT,
            resource_id=self.ctx.tenant_id,
            detail={"job_id": job.id, "documents": total, "index_version": INDEX_VERSION},
        )
        tenant_id, job_id = self.ctx.tenant_id, job.id
        after_commit(self.session, lambda: self.jobs.enqueue(tenant_id, job_id))
        return job, True

    async def set_acl(self, document_id: uuid.UUID, spec: AclSpec) -> Document:
        document = await self.manageable(document_id)
        pii = document.acl.get("pii")
        # DLP tags found at ingest stay: an ACL change never lifts the PII clearance.
        document.acl = {**acl_json(spec, document.owner_id), **({"pii": pii} if pii else {})}
        await self.session.flush()
        # In the vector store before the response: the next search already obeys it.
        await self.index.set_acl(self.ctx, document.id, document_acl(document))
        await self._drop_cached_answers(document.id)
        await self.audit.record(
            AuditAction.DOCUMENT_ACL_CHANGED,
            resource_type=ResourceType.DOCUMENT,
            resource_id=document.id,
            detail={
                "visibility": document.acl["visibility"],
                "groups": len(document.acl["groups"]),
                "users": len(document.acl["users"]),
                "classification": document.acl["classification"],
            },
        )
        return document

    async def delete(self, document_id: uuid.UUID) -> None:
        document = await self.manageable(document_id)
        await self.index.delete(self.ctx, document.id)
        await self._drop_cached_answers(document.id)
        for version in range(1, document.version + 1):
            await self.objects.delete("document", f"{document.id.hex}-v{version}")
        await self.documents.remove(document)
        await self.audit.record(
            AuditAction.DOCUMENT_DELETED,
            resource_type=ResourceType.DOCUMENT,
            resource_id=document.id,
        )

    async def manageable(self, document_id: uuid.UUID) -> Document:
        """A document the caller may manage (owner or tenant admin), whether or not its ACL
        lets them read it; a reader who may not manage it gets 403, anyone else 404."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFound()
        owner = document.owner_id is not None and document.owner_id == self.ctx.user_id
        if owner or self.ctx.has_role(Role.TENANT_ADMIN):
            return document
        if self.may_read(document):
            raise NotDocumentOwner()
        raise DocumentNotFound()

    async def _drop_cached_answers(self, document_id: uuid.UUID) -> None:
        """Cached answers citing this document go with its old version or ACL (a hit checks the
        version and the asker's access too; this keeps nothing stale around)."""
        questions = await self.index.questions(self.ctx)
        await drop_answers_citing(self.session, self.ctx, questions, [document_id])

    def _require_owner_or_admin(self, document: Document) -> None:
        if document.owner_id != self.ctx.user_id and not self.ctx.has_role(Role.TENANT_ADMIN):
            raise NotDocumentOwner()

    # -- reads -----------------------------------------------------------------------------
    def may_read(self, document: Document) -> bool:
        return may_read(self.ctx, document_acl(document), document.tenant_id)

    async def readable(self, document_id: uuid.UUID) -> Document:
        document = await self.documents.get(document_id)
        if document is None or not self.may_read(document):
            raise DocumentNotFound()
        return document

    async def page(self, *, limit: int, offset: int) -> tuple[list[Document], bool]:
        """The documents the caller may read, in creation order (policy applied per row)."""
        readable: list[Document] = []
        skipped, after, more = 0, None, True
        while more and len(readable) <= limit:
            rows = await self.documents.batch(after=after, size=500)
            more = len(rows) == 500
            for row in rows:
                if self.may_read(row):
                    if skipped < offset:
                        skipped += 1
                    else:
                        readable.append(row)
            if rows:
                after = (rows[-1].created_at, rows[-1].id)
        return readable[:limit], len(readable) > limit

    async def search(
        self, query: str, *, top_k: int, filters: dict[str, str]
    ) -> tuple[list[Passage], dict[uuid.UUID, str]]:
        """Hybrid search over what the caller may read (the ABAC filter is inside the query),
        with the titles of the documents the hits come from.

        The query is user input: the injection guard and the inbound DLP scan run first, so a
        blocked query is refused (422) and redacted or pseudonymized values never reach the
        embedder, the index or a log. A query the injection policy strips finds nothing."""
        guarded = await self.dlp.guard_user_message(query)
        if guarded is None:
            return [], {}
        query = (await self.dlp.scan_inbound(guarded)).text
        hits = await self.index.search(self.ctx, self.keys, query, top_k=top_k, filters=filters)
        rows = await self.documents.get_many(list({uuid.UUID(h.document_id) for h in hits}))
        return hits, await self.titles(rows)

    async def titles(self, documents: Sequence[Document]) -> dict[uuid.UUID, str]:
        return {
            d.id: (await self.keys.open("document-title", str(d.id), d.sealed_title)).decode()
            for d in documents
        }

    async def source_uri(self, document: Document) -> str | None:
        if document.sealed_source_uri is None:
            return None
        return (
            await self.keys.open("document-source", str(document.id), document.sealed_source_uri)
        ).decode()

    async def job(self, job_id: uuid.UUID) -> Job:
        job = await self.job_rows.get(job_id)
        if job is None:
            raise JobNotFound()
        # A job holds no content: its document's owner, its readers and tenant admins see it.
        if job.document_id is not None and not self.ctx.has_role(Role.TENANT_ADMIN):
            document = await self.documents.get(job.document_id)
            if (
                document is not None
                and document.owner_id != self.ctx.user_id
                and not (self.may_read(document))
            ):
                raise JobNotFound()
        return job


def keep_tags(document: Document, scrubber: IngestScrubber) -> None:
    """The union of the PII types tagged in any chunk, kept on the document so that a later
    ACL change re-applies the clearance to every chunk."""
    acl = {k: v for k, v in document.acl.items() if k != "pii"}
    if scrubber.tagged:
        acl["pii"] = {
            "types": sorted(scrubber.tagged),
            "classification": scrubber.tag_classification,
        }
    document.acl = acl


class IngestHandler:
    """The ``ingest`` job: read the sealed original, index it, record the outcome.

    The index work (parsing, embedding) runs in a read-only transaction — it only reads the
    tenant's data keys — so a long ingestion never holds a write lock; the outcome is written in
    a short transaction of its own. A job for a version that was replaced meanwhile does nothing.
    """

    def __init__(
        self,
        registry: RegionRegistry,
        keyring: Keyring,
        index: KnowledgeIndex,
        objects_for: Callable[[AsyncSession, TenantContext], TenantObjects],
        dlp: DlpEngine,
    ) -> None:
        self.registry = registry
        self.keyring = keyring
        self.index = index
        self.objects_for = objects_for
        self.dlp = dlp

    async def __call__(self, ctx: TenantContext, job: Job) -> None:
        if job.document_id is None:
            raise PermanentJobError("no_document", "the job names no document")
        indexed = await self.index_document(ctx, job.document_id, job.document_version)
        if indexed is not None:
            count, scrubber = indexed
            await self._outcome(ctx, job, "ready", count, scrubber)

    async def index_document(
        self, ctx: TenantContext, document_id: uuid.UUID, version: int, *, reindex: bool = False
    ) -> tuple[int, IngestScrubber] | None:
        """Index one stored version (its title, heading paths and text; see
        ``KnowledgeIndex.ingest``); None when that version is no longer the document's."""
        try:
            async with self.registry.tenant_transaction(ctx, read_only=True) as session:
                document = await DocumentRepository(session, ctx).get(document_id)
                if document is None or document.version != version:
                    return None
                keys = self.keyring.for_tenant(session, ctx)
                data = await self.objects_for(session, ctx).get(
                    "document", f"{document.id.hex}-v{document.version}"
                )
                title = await keys.open("document-title", str(document.id), document.sealed_title)
                policy = await load_policy(session, ctx)
                scrubber = IngestScrubber(DlpScanner(self.dlp, policy, ctx.tenant_id))
                count = await self.index.ingest(
                    ctx,
                    keys,
                    document_id=document.id,
                    version=document.version,
                    title=title.decode(),
                    data=data,
                    media_type=document.media_type,
                    acl=document_acl(document, with_pii_tags=False),
                    metadata=document.meta,
                    scrubber=scrubber,
                    reindex=reindex,
                )
        except (UnsupportedMediaType, UnparseableDocument) as exc:
            raise PermanentJobError(exc.code, exc.detail) from None
        return count, scrubber

    async def failed(self, ctx: TenantContext, job: Job) -> None:
        """The job ended failed (permanently, or out of retries): so does its document."""
        await self._outcome(ctx, job, "failed", 0)

    async def _outcome(
        self,
        ctx: TenantContext,
        job: Job,
        status: str,
        chunks: int,
        scrubber: IngestScrubber | None = None,
    ) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            document = await DocumentRepository(session, ctx).get(job.document_id)  # type: ignore[arg-type]
            if document is not None and document.version == job.document_version:
                document.status, document.chunk_count = status, chunks
                if status == "ready":
                    document.index_version = INDEX_VERSION
                if scrubber is not None:
                    keep_tags(document, scrubber)
                    await record_ingest_trips(session, ctx, document.id, scrubber)


class ReindexHandler:
    """The ``reindex`` job: rebuild the vectors of every indexed document whose index text is
    older than ``INDEX_VERSION`` (contextual indexing added the title), a few at a time.

    Each document is indexed again in place (its points overwritten, never removed first, so
    that searches keep finding it) and then marked current in a short transaction that also
    counts it in the job's ``done``. A redelivered or retried job resumes with what is still
    stale; a document replaced or deleted meanwhile is left to its own ingestion job.
    """

    BATCH = 20

    def __init__(self, registry: RegionRegistry, ingest: IngestHandler) -> None:
        self.registry = registry
        self.ingest = ingest

    async def __call__(self, ctx: TenantContext, job: Job) -> None:
        skipped: set[uuid.UUID] = set()
        while True:
            async with self.registry.tenant_transaction(ctx, read_only=True) as session:
                batch = [
                    (d.id, d.version)
                    for d in await DocumentRepository(session, ctx).stale(
                        INDEX_VERSION, size=self.BATCH + len(skipped)
                    )
                    if d.id not in skipped
                ]
            if not batch:
                return
            for document_id, version in batch:
                try:
                    indexed = await self.ingest.index_document(
                        ctx, document_id, version, reindex=True
                    )
                except PermanentJobError:
                    # Its stored file no longer parses (a parser change): the old vectors stay.
                    indexed = None
                if indexed is None:
                    skipped.add(document_id)
                await self._mark(ctx, job.id, document_id, version, indexed)

    async def _mark(
        self,
        ctx: TenantContext,
        job_id: uuid.UUID,
        document_id: uuid.UUID,
        version: int,
        indexed: tuple[int, IngestScrubber] | None,
    ) -> None:
        async with self.registry.tenant_transaction(ctx) as session:
            document = await DocumentRepository(session, ctx).get(document_id)
            if indexed is not None and document is not None and document.version == version:
                count, scrubber = indexed
                document.index_version, document.chunk_count = INDEX_VERSION, count
                keep_tags(document, scrubber)
            job = await JobRepository(session, ctx).get(job_id)
            if job is not None:
                job.done = (job.done or 0) + 1
                job.total = max(job.total or 0, job.done)
