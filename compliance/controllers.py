"""``/v1/sar``: compliance officers start and follow subject-access requests."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from compliance.errors import SarExportUnavailable, SarNotFound
from compliance.retention import RetentionService
from compliance.schemas import RetentionPolicy, SarAccepted, SarCreate, SarRead
from compliance.services import SarService
from kernel.api import SECURED, problem_responses
from kernel.audit_events import AuditAction, ResourceType
from kernel.errors import InvalidInput
from kernel.guards import requires_role, requires_tenant
from kernel.jobs.runner import JobRunner
from kernel.tenancy import Role, TenantContext
from residency.database import after_commit
from residency.objects import TenantObjects


class SarController(Controller):
    path = "/v1/sar"
    tags = ["compliance"]
    security = SECURED
    guards = [requires_tenant, requires_role(Role.COMPLIANCE_OFFICER)]

    @post(
        "/",
        status_code=202,
        responses=problem_responses(404, 422),
        summary="Start a subject-access request (access or erasure); it runs as a job",
    )
    async def create(
        self,
        db: NamedDependency[AsyncSession],
        sar: NamedDependency[SarService],
        jobs: NamedDependency[JobRunner],
        data: JSONBody[SarCreate],
    ) -> SarAccepted:
        given = (data.subject.user_id, data.subject.email, data.subject.external_id)
        if sum(v is not None for v in given) != 1:
            raise InvalidInput("Name the subject by exactly one of user_id, email, external_id.")
        subject_id, reference = await sar.resolve(
            user_id=data.subject.user_id,
            email=data.subject.email,
            external_id=data.subject.external_id,
        )
        documents = data.documents or (await sar.retention().current()).erasure_documents
        created, job = await sar.submit(data.kind, subject_id, reference, documents)
        tenant_id, job_id = sar.ctx.tenant_id, job.id
        after_commit(db, lambda: jobs.enqueue(tenant_id, job_id))
        return SarAccepted(id=created.id, job_id=job.id, status=created.status)

    @get(
        "/{request_id:uuid}",
        responses=problem_responses(404),
        summary="A subject-access request: its status and, when done, its signed report",
    )
    async def read(
        self, sar: NamedDependency[SarService], request_id: FromPath[uuid.UUID]
    ) -> SarRead:
        found = await sar.get(request_id)
        if found is None:
            raise SarNotFound()
        return SarRead(
            id=found.id,
            kind=found.kind,
            status=found.status,
            steps_done=list(found.steps_done),
            created_at=found.created_at,
            finished_at=found.finished_at,
            error=found.error,
            report=await sar.report(found),
            signature=found.signature,
        )

    @get(
        "/{request_id:uuid}/export",
        responses=problem_responses(404, 409),
        summary="The access bundle: a zip of JSON files (opened content) and the signed report",
        media_type="application/zip",
    )
    async def export(
        self,
        sar: NamedDependency[SarService],
        tenant_objects: NamedDependency[TenantObjects],
        request_id: FromPath[uuid.UUID],
    ) -> Response[bytes]:
        found = await sar.get(request_id)
        if found is None:
            raise SarNotFound()
        if found.kind != "access" or found.status != "done":
            raise SarExportUnavailable()
        bundle = await sar.export(found, tenant_objects)
        await sar.audit.record(
            AuditAction.SAR_EXPORTED,
            resource_type=ResourceType.SAR_REQUEST,
            resource_id=found.id,
            detail={"bytes": len(bundle)},
        )
        return Response(
            content=bundle,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="sar-{found.id}.zip"'},
        )


def provide_retention(
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> RetentionService:
    return RetentionService(db, ctx, audit)


class RetentionController(Controller):
    path = "/v1/admin/retention"
    tags = ["compliance", "admin"]
    security = SECURED
    guards = [requires_tenant, requires_role(Role.TENANT_ADMIN)]
    dependencies = {"retention": Provide(provide_retention, sync_to_thread=False)}

    @get(
        "/",
        responses=problem_responses(),
        summary="How long chat messages, cache entries, usage detail and originals are kept",
    )
    async def get_retention(self, retention: NamedDependency[RetentionService]) -> RetentionPolicy:
        return await retention.current()

    @put(
        "/",
        responses=problem_responses(422),
        summary="Replace the tenant's retention periods (the sweeper enforces them)",
    )
    async def put_retention(
        self, retention: NamedDependency[RetentionService], data: JSONBody[RetentionPolicy]
    ) -> RetentionPolicy:
        return await retention.replace(data)
