"""Rules between the fields of a request body, written as JSON Schema for the OpenAPI document.

A struct states them in its ``json_schema_extra`` class variable (``kernel.strict_bodies`` puts it
on the struct's component); the server enforces the same rule where the body is used. No
framework imports: request schemas use these.
"""

from __future__ import annotations

from typing import Any


def given(field: str) -> dict[str, Any]:
    """``field`` is present and not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def exactly_one_of(*fields: str) -> dict[str, Any]:
    """Exactly one of ``fields`` is given (present and not null)."""
    return {"oneOf": [given(field) for field in fields]}
