"""Shared API pieces: the problem-detail schema for OpenAPI, pagination parameters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import QueryParameter

from kernel.errors import PROBLEM_JSON

BEARER = "BearerAuth"
# Declared on every controller that needs a credential, so the OpenAPI document says so.
SECURED: list[dict[str, list[str]]] = [{BEARER: []}]
# A Bulwark session (what a browser sign-in opens): its cookie, or its token as a bearer.
SESSION_COOKIE_AUTH = "SessionCookie"
SESSION_TOKEN_AUTH = "SessionToken"  # noqa: S105 (a scheme name, not a secret)
SESSION_SECURED: list[dict[str, list[str]]] = [{SESSION_COOKIE_AUTH: []}, {SESSION_TOKEN_AUTH: []}]


class ProblemDetail(msgspec.Struct):
    """RFC 9457 problem details, as every error of this API is rendered."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str
    request_id: str | None = None


_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, wrong types, unknown or missing fields)",
    401: "Missing or invalid credential",
    403: "Authenticated but not allowed (role, operator-only, suspended tenant)",
    404: "No such resource in this tenant",
    409: "Conflicts with an existing resource",
    410: "The resource was deleted",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Well-formed but semantically invalid input",
    429: "Rate limit or quota exhausted (see Retry-After)",
    503: "A region's database or another dependency is unavailable",
}
_ALWAYS = (400, 401, 403, 413, 503)


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(
            data_container=ProblemDetail, description=_DESCRIPTIONS[code], media_type=PROBLEM_JSON
        )
        for code in sorted({*_ALWAYS, *codes})
    }


Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (1-500).")]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000, description="Items to skip.")]


def next_offset(items: Sequence[Any], *, limit: int, offset: int) -> int | None:
    return offset + limit if len(items) == limit else None


# Routes that answer with Server-Sent Events when asked (``Accept: text/event-stream`` or
# ``"stream": true``): their 200 is documented with both media types.
EVENT_STREAM_ROUTES = (
    ("/v1/chat", "post"),
    ("/v1/chat/completions", "post"),
    ("/v1/gateway/chat/completions", "post"),
)


def document_event_streams(app: Litestar) -> None:
    paths = app.openapi_schema.paths or {}
    for path, method in EVENT_STREAM_ROUTES:
        item = paths.get(path)
        operation = getattr(item, method, None) if item is not None else None
        response = (operation.responses or {}).get("200") if operation is not None else None
        if not isinstance(response, OpenAPIResponse):
            continue
        response.content = {
            **(response.content or {}),
            "text/event-stream": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    description="One Server-Sent Event (its data is a JSON document).",
                    properties={
                        "event": Schema(type=OpenAPIType.STRING),
                        "data": Schema(type=OpenAPIType.STRING),
                    },
                )
            ),
        }


def sse_event(payload: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event whose data is ``payload`` as compact JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
