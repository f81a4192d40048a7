"""Request-scoped DLP dependencies."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import get_runtime
from audit.services import AuditLog
from dlp.services import DlpService, TripRecorder
from kernel.tenancy import TenantContext


def provide_dlp_service(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> DlpService:
    runtime = get_runtime(request)
    return DlpService(db, ctx, runtime.dlp, TripRecorder(db, ctx, audit, runtime.registry))
