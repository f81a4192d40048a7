"""SCIM protocol errors (RFC 7644 §3.12): ``AppError`` subclasses that also carry a ``scimType``.

The SCIM routes render every failure as a SCIM ``Error`` message (see ``auth/scim/http.py``);
other routes would render these as problem details like any ``AppError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import ValidationError
from scim2_models import Error, SCIMException

from kernel.errors import AppError


class ScimError(AppError):
    """A SCIM failure: an HTTP status, an optional ``scimType`` keyword and a detail."""

    status = 400
    code = "scim_error"
    title = "SCIM error"
    scim_type: ClassVar[str | None] = None


class ScimInvalidValue(ScimError):
    code = "scim_invalid_value"
    scim_type = "invalidValue"


class ScimInvalidSyntax(ScimError):
    code = "scim_invalid_syntax"
    scim_type = "invalidSyntax"


class ScimInvalidFilter(ScimError):
    code = "scim_invalid_filter"
    scim_type = "invalidFilter"


class ScimInvalidPath(ScimError):
    code = "scim_invalid_path"
    scim_type = "invalidPath"


class ScimTooMany(ScimError):
    code = "scim_too_many"
    scim_type = "tooMany"

    def __init__(self) -> None:
        super().__init__("The filter matches too many resources to evaluate; narrow it down.")


class ScimUniqueness(ScimError):
    status = 409
    code = "scim_uniqueness"
    scim_type = "uniqueness"

    def __init__(self, attribute: str) -> None:
        # The attribute name only: the conflicting value is tenant content.
        super().__init__(f"Another resource of this tenant already has this {attribute}.")


class ScimResourceNotFound(ScimError):
    status = 404
    code = "scim_not_found"

    def __init__(self, what: str = "resource") -> None:
        super().__init__(f"No such {what} in this tenant.")


class ScimPreconditionFailed(ScimError):
    status = 412
    code = "scim_precondition_failed"

    def __init__(self) -> None:
        super().__init__("The resource has changed since that version (If-Match).")


class ScimProtocolError(ScimError):
    """Any other SCIM failure, as scim2-models reports it (status and scimType given)."""

    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.scim_type_value = scim_type


def error_status(exc: ScimError) -> int:
    return exc.status_code if isinstance(exc, ScimProtocolError) else exc.status


def error_scim_type(exc: ScimError) -> str | None:
    return exc.scim_type_value if isinstance(exc, ScimProtocolError) else exc.scim_type


# Pydantic appends "[type=..., input_value=..., input_type=...]" and a documentation link to
# its messages; the value is the client's own input, so it is cut rather than echoed.
_PYDANTIC_NOISE = re.compile(r"\s*\[type=[^\]]*\]|\s*For further information visit \S+")


def clean_detail(detail: str) -> str:
    text = _PYDANTIC_NOISE.sub("", detail)
    return " ".join(text.split())[:500] or "Invalid request."


def from_scim_exception(exc: SCIMException) -> ScimProtocolError:
    error = exc.to_error()
    return ScimProtocolError(
        int(error.status or exc.status), error.scim_type or None, clean_detail(exc.detail)
    )


def from_validation_error(exc: ValidationError) -> ScimProtocolError:
    """The first error of a payload validation, as SCIM names it (invalidValue, ...)."""
    errors: Sequence[Mapping[str, Any]] = exc.errors(include_input=False, include_url=False)
    if not errors:
        return ScimProtocolError(400, "invalidValue", "Invalid request.")
    error = Error.from_validation_error(errors[0])
    return ScimProtocolError(
        int(error.status or 400), error.scim_type, clean_detail(error.detail or "")
    )
