"""SCIM over HTTP: ``application/scim+json`` responses, and SCIM ``Error`` messages for every
failure on the SCIM routes (RFC 7644 §3.12), never problem+json.

``scim_exception_handler`` is registered on the SCIM controllers, and (for requests under
``/scim`` that match no route, which only app-level handlers see) by ``app.main`` for that prefix.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from scim2_models import SCIMException

from auth.scim.errors import ScimError, error_scim_type, error_status, from_scim_exception
from kernel.errors import AppError, expected_in_group

SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

log = structlog.get_logger("bulwark.scim")

_HTTP_DETAILS = {
    400: "The request body is not a valid JSON object.",
    401: "Authentication required.",
    404: "No such SCIM endpoint.",
    405: "This method is not allowed on this SCIM endpoint.",
    413: "The request body is too large.",
    415: "Unsupported media type; send application/scim+json.",
}


def scim_response(
    content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(content=body, status_code=status_code, media_type=SCIM_JSON, headers=headers)


def scim_error(
    status: int, scim_type: str | None, detail: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    error: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status)}
    if scim_type:
        error["scimType"] = scim_type
    error["detail"] = detail
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="scim"'}
    return scim_response(error, status_code=status, headers=headers)


def scim_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    exc = expected_in_group(exc)
    if isinstance(exc, SCIMException):
        exc = from_scim_exception(exc)
    if isinstance(exc, ScimError):
        return scim_error(error_status(exc), error_scim_type(exc), exc.detail)
    if isinstance(exc, AppError):
        # Authentication (401), a suspended tenant (403), an unusable key or region (4xx/503);
        # a 429 or 503 keeps its Retry-After.
        return scim_error(exc.status, None, exc.detail, headers=exc.headers or None)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        status = exc.status_code
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
        return scim_error(
            status,
            "invalidSyntax" if status == 400 else None,
            _HTTP_DETAILS.get(status, "The request was refused."),
            headers=headers or None,
        )
    log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path, exc_info=exc)
    return scim_error(
        500, None, "An unexpected error occurred; quote the X-Request-ID when reporting it."
    )


# Every key the app-level handlers use, so none of theirs is nearer to an exception's type.
SCIM_EXCEPTION_HANDLERS: dict[Any, Any] = {
    ExceptionGroup: scim_exception_handler,
    AppError: scim_exception_handler,
    HTTPException: scim_exception_handler,
    SCIMException: scim_exception_handler,
    Exception: scim_exception_handler,
}
