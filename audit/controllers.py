"""The audit API for tenant admins and compliance officers: events, export, verify, checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from audit.chain import format_time
from audit.errors import InvalidTimeFilter
from audit.models import AuditEvent
from audit.pseudonyms import UUID_PATTERN
from audit.repositories import EventFilter
from audit.schemas import (
    AuditCheckpoint,
    AuditEventPage,
    AuditEventRead,
    AuditVerification,
    ExportFormat,
)
from audit.services import AuditExporter, AuditService
from audit.signing import CheckpointSigner
from kernel.api import SECURED, Limit, problem_responses
from kernel.audit_events import AuditOutcome
from kernel.guards import requires_role
from kernel.tenancy import Role, TenantContext

_CODE = r"^[a-z][a-z0-9_.]{0,63}$"
_ACTOR = rf"^(ps_[0-9a-f]{{32}}|user:{UUID_PATTERN}|operator|system|scim)$"
# Exactly representable as a float (the OpenAPI document renders bounds as numbers).
_MAX_SEQUENCE = 2**53

Cursor = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=_MAX_SEQUENCE,
        description="Return events after this sequence (exclusive); 0 starts at the first.",
    ),
]
ActionFilter = Annotated[
    str | None, QueryParameter(pattern=_CODE, max_length=64, description="e.g. user.created")
]
ActorFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=_ACTOR,
        max_length=64,
        description=(
            "A pseudonym (ps_...), a user as 'user:<uuid>', 'operator', 'system' or 'scim'."
        ),
    ),
]
ResourceTypeFilter = Annotated[str | None, QueryParameter(pattern=_CODE, max_length=64)]
ResourceIdFilter = Annotated[
    str | None, QueryParameter(pattern=r"^[A-Za-z0-9._:/+=-]{1,128}$", max_length=128)
]
# A string, parsed here: as a ``datetime`` parameter Litestar would also accept bare numbers
# (as Unix times), which the OpenAPI document does not promise.
_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)
TimeFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=_TIME,
        max_length=40,
        format="date-time",
        description="ISO 8601 date and time; without an offset it is taken as UTC.",
    ),
]
Format = Annotated[
    ExportFormat, QueryParameter(name="format", description="jsonl (default) or csv.")
]

_MEDIA_TYPES = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.CSV: "text/csv"}


@dataclass
class ExportOperation(Operation):
    """Documents the export's two real media types (Litestar would say application/json)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.description = "The chain, one event per line (JSON lines) or per row (CSV)."
            ok.content = {
                media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
                for media_type in _MEDIA_TYPES.values()
            }


def provide_audit_service(
    db: NamedDependency[AsyncSession], ctx: NamedDependency[TenantContext]
) -> AuditService:
    return AuditService(db, ctx)


def _utc(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:  # the pattern has checked the shape; this checks the values (no 25:61:60)
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise InvalidTimeFilter(name) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def audit_event_read(event: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        id=event.id,
        tenant_id=event.tenant_id,
        sequence=event.sequence,
        occurred_at=format_time(event.occurred_at),
        actor=event.actor,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        outcome=AuditOutcome(event.outcome),
        request_id=event.request_id,
        detail=event.detail,
        prev_hash=event.prev_hash,
        hash=event.hash,
        canon=event.canon,
    )


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN, Role.COMPLIANCE_OFFICER)]
    dependencies = {"audit_service": Provide(provide_audit_service, sync_to_thread=False)}

    @get("/events", responses=problem_responses(422), summary="List audit events (oldest first)")
    async def list_events(
        self,
        audit_service: NamedDependency[AuditService],
        action: ActionFilter = None,
        actor: ActorFilter = None,
        resource_type: ResourceTypeFilter = None,
        resource_id: ResourceIdFilter = None,
        since: TimeFilter = None,
        until: TimeFilter = None,
        cursor: Cursor = 0,
        limit: Limit = 100,
    ) -> AuditEventPage:
        rows, next_cursor = await audit_service.page(
            EventFilter(
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                since=_utc(since, "since"),
                until=_utc(until, "until"),
            ),
            actor=actor,
            cursor=cursor,
            limit=limit,
        )
        return AuditEventPage(
            items=[audit_event_read(row) for row in rows], next_cursor=next_cursor
        )

    @get(
        "/export",
        operation_class=ExportOperation,
        responses=problem_responses(),
        summary="Export the whole chain as JSON lines or CSV, with every event's hashes",
    )
    async def export_events(
        self,
        audit_exporter: NamedDependency[AuditExporter],
        ctx: NamedDependency[TenantContext],
        export_format: Format = ExportFormat.JSONL,
    ) -> Stream:
        # No ``db`` here: the stream outlives the request's unit of work and opens its own.
        filename = f"audit-{ctx.tenant_slug}.{export_format.value}"
        return Stream(
            audit_exporter.stream(export_format),
            media_type=_MEDIA_TYPES[export_format],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @get("/verify", responses=problem_responses(), summary="Recompute and check the whole chain")
    async def verify_chain(self, audit_service: NamedDependency[AuditService]) -> AuditVerification:
        result = await audit_service.verify()
        return AuditVerification(
            ok=result.ok,
            events_checked=result.events_checked,
            first_bad_sequence=result.first_bad_sequence,
        )

    @get(
        "/checkpoint",
        responses=problem_responses(409),
        summary="Sign the chain head with the deployment's Ed25519 key",
    )
    async def checkpoint(
        self,
        audit_service: NamedDependency[AuditService],
        audit_signer: NamedDependency[CheckpointSigner],
    ) -> AuditCheckpoint:
        signed = await audit_service.checkpoint(audit_signer)
        return AuditCheckpoint(
            tenant_id=signed.tenant_id,
            sequence=signed.sequence,
            head_hash=signed.head_hash,
            signed_at=signed.signed_at,
            key_id=signed.key_id,
            algorithm=signed.algorithm,
            canon=signed.canon,
            public_key=signed.public_key,
            signature=signed.signature,
        )
