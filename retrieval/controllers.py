"""Documents, ingestion jobs and search."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody

from kernel.api import SECURED, Limit, Offset, problem_responses
from kernel.errors import InvalidInput
from kernel.guards import requires_tenant
from kernel.jobs.models import Job
from kernel.jobs.schemas import JobStatus
from retrieval.models import Document
from retrieval.schemas import (
    AclSpec,
    DocumentAccepted,
    DocumentCreate,
    DocumentPage,
    DocumentRead,
    JobRead,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from retrieval.services import TEXT_MEDIA_TYPE, DocumentService, Upload


async def document_read(
    documents: DocumentService, document: Document, title: str | None = None
) -> DocumentRead:
    return DocumentRead(
        id=document.id,
        title=title if title is not None else (await documents.titles([document]))[document.id],
        external_id=document.external_id,
        source_uri=await documents.source_uri(document),
        media_type=document.media_type,
        size_bytes=document.size_bytes,
        version=document.version,
        status=document.status,
        chunk_count=document.chunk_count,
        index_version=document.index_version,
        owner_id=document.owner_id,
        acl=document.acl,
        metadata=document.meta,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


def job_read(job: Job) -> JobRead:
    return JobRead(
        id=job.id,
        kind=job.kind,
        document_id=job.document_id,
        status=JobStatus(job.status),
        attempts=job.attempts,
        error_code=job.error_code,
        error_detail=job.error_detail,
        created_at=job.created_at,
        finished_at=job.finished_at,
        done=job.done,
        total=job.total,
    )


def accepted(document: Document, job: Job | None, duplicate: bool) -> DocumentAccepted:
    return DocumentAccepted(
        document_id=document.id,
        job_id=job.id if job else None,
        version=document.version,
        duplicate=duplicate,
    )


_EXTERNAL_ID = re.compile(r"^[!-~]{1,256}$")
_SOURCE_URI = re.compile(r"^[!-~]{1,2048}$")


def _form_field(name: str, value: str | None, pattern: re.Pattern[str]) -> str | None:
    """A text field of the upload form, held to the same rule as in the JSON endpoint; an
    empty field (as HTML forms send) is no value."""
    if not value:
        return None
    if not pattern.match(value):
        raise InvalidInput(f"Invalid {name}: printable ASCII without spaces, {pattern.pattern}.")
    return value


def _form_text(pattern: re.Pattern[str]) -> dict[str, Any]:
    """A text field's schema: ``pattern``, or empty (no value, as HTML forms send)."""
    return {"oneOf": [{"type": "string", "pattern": f"^$|{pattern.pattern}"}, {"type": "null"}]}


class UploadForm(msgspec.Struct):
    """A file, and the fields of the JSON endpoint's body: text fields under the same rules
    (empty: no value), the ACL as a JSON object (the part's text; ``null``: no ACL)."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "properties": {
            "external_id": _form_text(_EXTERNAL_ID),
            "source_uri": _form_text(_SOURCE_URI),
            "acl": {"oneOf": [{"$ref": "#/components/schemas/AclSpec"}, {"type": "null"}]},
        }
    }

    file: UploadFile
    title: str | None = None
    external_id: str | None = None
    source_uri: str | None = None
    acl: str | None = None


class DocumentController(Controller):
    path = "/v1/documents"
    tags = ["documents"]
    security = SECURED
    guards = [requires_tenant]

    @post(
        "/",
        status_code=202,
        responses=problem_responses(413, 415, 422),
        summary="Add a document (or a new version by external_id); ingestion is a job",
    )
    async def create_document(
        self, documents: NamedDependency[DocumentService], data: JSONBody[DocumentCreate]
    ) -> DocumentAccepted:
        return accepted(
            *await documents.submit(
                Upload(
                    title=data.title,
                    content=data.text.encode(),
                    media_type=TEXT_MEDIA_TYPE,
                    external_id=data.external_id,
                    source_uri=data.source_uri,
                    metadata=data.metadata,
                    acl=data.acl,
                )
            )
        )

    @post(
        "/upload",
        status_code=202,
        responses=problem_responses(413, 415, 422),
        summary="Upload a file (txt, md, html, pdf, docx) as multipart/form-data",
    )
    async def upload_document(
        self,
        documents: NamedDependency[DocumentService],
        data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> DocumentAccepted:
        content = await data.file.read()
        acl = None
        if data.acl:
            try:
                acl = msgspec.json.decode(data.acl.encode(), type=AclSpec | None, strict=True)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise InvalidInput(f"Invalid acl: {exc}") from None
        title = (data.title or data.file.filename or "untitled")[:500]
        return accepted(
            *await documents.submit(
                Upload(
                    title=title,
                    content=content,
                    media_type=(data.file.content_type or "application/octet-stream").split(";")[0],
                    external_id=_form_field("external_id", data.external_id, _EXTERNAL_ID),
                    source_uri=_form_field("source_uri", data.source_uri, _SOURCE_URI),
                    acl=acl,
                )
            )
        )

    @post(
        "/reindex",
        status_code=202,
        responses=problem_responses(403),
        summary="Rebuild the vectors of documents indexed by an older release (tenant admin; a "
        "job with progress)",
    )
    async def reindex(self, documents: NamedDependency[DocumentService]) -> JobRead:
        job, _ = await documents.reindex()
        return job_read(job)

    @get("/", responses=problem_responses(), summary="Documents the caller may read")
    async def list_documents(
        self, documents: NamedDependency[DocumentService], limit: Limit = 100, offset: Offset = 0
    ) -> DocumentPage:
        rows, more = await documents.page(limit=limit, offset=offset)
        titles = await documents.titles(rows)
        return DocumentPage(
            items=[await document_read(documents, row, titles[row.id]) for row in rows],
            next_offset=offset + limit if more else None,
        )

    @get("/{document_id:uuid}", responses=problem_responses(404), summary="Read a document")
    async def get_document(
        self, documents: NamedDependency[DocumentService], document_id: FromPath[uuid.UUID]
    ) -> DocumentRead:
        return await document_read(documents, await documents.readable(document_id))

    @patch(
        "/{document_id:uuid}/acl",
        responses=problem_responses(404, 422),
        summary="Change who may read a document (applies to the next search)",
    )
    async def patch_acl(
        self,
        documents: NamedDependency[DocumentService],
        document_id: FromPath[uuid.UUID],
        data: JSONBody[AclSpec],
    ) -> DocumentRead:
        return await document_read(documents, await documents.set_acl(document_id, data))

    @delete(
        "/{document_id:uuid}",
        responses=problem_responses(404),
        summary="Delete a document: its vectors, sealed file and record",
    )
    async def delete_document(
        self, documents: NamedDependency[DocumentService], document_id: FromPath[uuid.UUID]
    ) -> None:
        await documents.delete(document_id)


class JobController(Controller):
    path = "/v1/jobs"
    tags = ["documents"]
    security = SECURED
    guards = [requires_tenant]

    @get(
        "/{job_id:uuid}",
        responses=problem_responses(404),
        summary="A job's status (ingestion, re-index with progress)",
    )
    async def get_job(
        self, documents: NamedDependency[DocumentService], job_id: FromPath[uuid.UUID]
    ) -> JobRead:
        return job_read(await documents.job(job_id))


class SearchController(Controller):
    path = "/v1/search"
    tags = ["search"]
    security = SECURED
    guards = [requires_tenant]

    @post(
        "/",
        status_code=200,
        responses=problem_responses(422),
        summary="Hybrid search over the chunks the caller may read (ABAC inside the query)",
    )
    async def search(
        self, documents: NamedDependency[DocumentService], data: JSONBody[SearchRequest]
    ) -> SearchResponse:
        hits, titles = await documents.search(data.query, top_k=data.top_k, filters=data.filters)
        return SearchResponse(
            hits=[
                SearchHit(
                    chunk_id=h.chunk_id,
                    document_id=uuid.UUID(h.document_id),
                    title=titles.get(uuid.UUID(h.document_id), ""),
                    heading_path=h.heading_path,
                    score=h.score,
                    text=h.text,
                )
                for h in hits
            ]
        )
