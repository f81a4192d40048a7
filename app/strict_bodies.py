"""Request bodies are validated strictly, and the OpenAPI document says exactly that.

Litestar converts request bodies in msgspec's lax mode, which would accept ``"active": 0`` as
``false`` or ``"5"`` as 5. Before the handler runs, the raw JSON body is decoded once more in
strict mode against the handler's body type; anything lax mode would have coerced is a 400.
Structs with ``forbid_unknown_fields`` are documented with ``additionalProperties: false``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Schema


@cache
def _body_type(handler: HTTPRouteHandler) -> Any:
    """The msgspec Struct of a JSON request body (form bodies, e.g. SAML's ACS, are not JSON)."""
    data = handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(data, "annotation", None)
    media_type = getattr(getattr(data, "kwarg_definition", None), "media_type", None)
    if media_type not in (None, RequestEncodingType.JSON):
        return None
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    return None


async def validate_body_strictly(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: decode the JSON body strictly (400 on any type coercion)."""
    body_type = _body_type(request.route_handler)
    if body_type is None:
        return
    body = await request.body()
    try:
        # JSON has one number type: 5.0 is as much an integer as 5 (as JSON Schema agrees).
        parsed = _integral_floats(msgspec.json.decode(body))
        msgspec.convert(parsed, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}",
            extra=[{"key": "data", "message": str(exc), "source": "body"}],
        ) from None
    except msgspec.DecodeError:
        raise ClientException("The request body is not valid JSON.") from None


def _integral_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats(item) for item in value]
    return value


def _strict_structs(root: type[msgspec.Struct]) -> set[type[msgspec.Struct]]:
    found: set[type[msgspec.Struct]] = set()

    def walk(info: Any) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in found:
                return
            if info.forbid_unknown_fields:
                found.add(info.cls)
            for field in info.fields:
                walk(field.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, msgspec.inspect.DictType):
            walk(info.value_type)
        elif hasattr(info, "item_type"):
            walk(info.item_type)

    walk(msgspec.inspect.type_info(root))
    return found


def document_strict_bodies(app: Litestar) -> None:
    names = {
        struct.__name__
        for handlers in app.route_handler_method_map.values()
        for handler in handlers.values()
        if isinstance(handler, HTTPRouteHandler) and (body := _body_type(handler)) is not None
        for struct in _strict_structs(body)
    }
    for name, schema in (app.openapi_schema.components.schemas or {}).items():
        if name.rsplit("_", 1)[-1] in names and isinstance(schema, Schema):
            schema.additional_properties = False
