"""Request-scoped audit dependencies: the log that services append to, and the operator's origin.

The request id recorded in each event is the one the request log line and the problem responses
carry, so an event can be traced back to its request.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from audit.pseudonyms import OPERATOR_SUBJECT
from audit.services import AuditLog, AuditOrigin
from kernel.observability import ensure_request_id
from kernel.tenancy import TenantContext


def provide_audit_log(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> AuditLog:
    """``audit``: the caller's log, in the request's own unit of work (needs ``db`` and
    ``ctx``); the composition root registers it on the app."""
    return AuditLog(db, ctx, request_id=ensure_request_id(request.scope))


def operator_origin(request: Request[Any, Any, Any]) -> AuditOrigin:
    return AuditOrigin(OPERATOR_SUBJECT, request_id=ensure_request_id(request.scope))
