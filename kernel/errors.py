"""The one error base, and the one handler that renders every failure as RFC 9457 problem+json.

Code below the controllers raises ``AppError`` subclasses (never HTTP exceptions); each carries a
stable machine ``code`` and the HTTP status it maps to. Framework errors (validation, 404, 405,
413) and anything unexpected are rendered the same way, without stack traces or request bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from kernel.observability import ensure_request_id

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://bulwark.dev/problems/"

log = structlog.get_logger("bulwark.errors")


class AppError(Exception):
    """Base of every expected failure. Subclasses set ``status`` and ``code``."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        # Response headers the problem carries (e.g. ``Retry-After`` on a 429).
        self.headers: dict[str, str] = {}


class InvalidInput(AppError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unauthenticated(AppError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class TooManyRequests(AppError):
    """Rate limit or quota exhausted; ``retry_after`` (seconds) becomes the Retry-After header."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=max(1, retry_after), **extra)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class ServiceUnavailable(AppError):
    """An outage of something the request needs (database, KMS, vector store, models).

    ``retry_after`` (seconds) becomes the Retry-After header: the state is intact and the same
    request may be sent again."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    retry_after: ClassVar[int] = 5

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(self.retry_after)}


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_input", "Invalid input"),
    429: ("rate_limited", "Too many requests"),
    503: ("service_unavailable", "Service unavailable"),
}


def problem(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    request_id = ensure_request_id(request.scope)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    return problem(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        extra=exc.extra or None,
        headers=getattr(exc, "headers", None) or None,
    )


def http_exception_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    code, title = _STATUS_CODES.get(status, ("http_error", "HTTP error"))
    extra: dict[str, Any] | None = None
    if isinstance(exc, ValidationException):
        code, title = "invalid_input", "Invalid input"
        extra = {"errors": _sanitize_errors(exc.extra)}
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    headers = {k: v for k, v in (exc.headers or {}).items()}
    return problem(
        request,
        status=status,
        code=code,
        title=title,
        detail=detail,
        extra=extra,
        headers=headers or None,
    )


def _sanitize_errors(extra: Any) -> list[dict[str, Any]]:
    """Keep the field and the reason of each validation error, never the submitted value."""
    if not isinstance(extra, list):
        return []
    errors: list[dict[str, Any]] = []
    for item in extra[:50]:
        if isinstance(item, dict):
            errors.append({k: item[k] for k in ("key", "message", "source") if item.get(k)})
    return errors


def internal_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path, exc_info=exc)
    return problem(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; quote the request id when reporting it.",
    )


def expected_in_group(exc: Exception) -> Exception:
    """Litestar gathers failures of dependency clean-up (the request's unit of work committing)
    into an exception group: when every failure in it is an expected one (a database outage at
    commit), the first is the answer; otherwise the group stays an internal error."""
    if isinstance(exc, ExceptionGroup):
        inner = exc.exceptions
        if inner and all(isinstance(e, AppError) for e in inner):
            return inner[0]
    return exc


def exception_group_handler(
    request: Request[Any, Any, Any], exc: ExceptionGroup[Exception]
) -> Response[dict[str, Any]]:
    inner = expected_in_group(exc)
    if isinstance(inner, AppError):
        return app_error_handler(request, inner)
    return internal_error_handler(request, exc)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ExceptionGroup: exception_group_handler,
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}

ExceptionHandler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]


def with_prefix_handler(
    prefix: str, handler: ExceptionHandler, handlers: Mapping[Any, Any] = EXCEPTION_HANDLERS
) -> dict[Any, Any]:
    """The app-level handlers, except that requests under ``prefix`` go to ``handler``.

    A protocol mounted under its own prefix (SCIM) renders errors in its own format. Its routes
    register that handler themselves; this covers the requests under the prefix that match no
    route (404) or no method (405), which only app-level handlers ever see.
    """

    def dispatch(base: ExceptionHandler) -> ExceptionHandler:
        def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            path = request.url.path
            if path == prefix or path.startswith(prefix + "/"):
                return handler(request, exc)
            return base(request, exc)

        return handle

    return {exc_type: dispatch(base) for exc_type, base in handlers.items()}


__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_JSON",
    "AppError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthenticated",
    "expected_in_group",
    "with_prefix_handler",
]
