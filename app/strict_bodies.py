"""Request bodies are validated strictly, and the OpenAPI document says exactly that.

Litestar converts request bodies in msgspec's lax mode, which would accept ``"active": 0`` as
``false`` or ``"5"`` as 5. Before the handler runs, the raw JSON body is decoded once more in
strict mode against the handler's body type; anything lax mode would have coerced is a 400.
Most bodies pass a typed strict decoder in one pass; only one it refuses takes the slower path
that first reads integral floats (``5.0``) as integers, so the answer is the same either way.
Structs with ``forbid_unknown_fields`` are documented with ``additionalProperties: false`` and
with every numeric bound of their fields.
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


@cache
def _strict_decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type, strict=True)


async def validate_body_strictly(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: decode the JSON body strictly (400 on any type coercion)."""
    body_type = _body_type(request.route_handler)
    if body_type is None:
        return
    body = await request.body()
    try:
        _strict_decoder(body_type).decode(body)
        return
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
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


_BOUNDS = (
    ("ge", "minimum"),
    ("gt", "exclusive_minimum"),
    ("le", "maximum"),
    ("lt", "exclusive_maximum"),
)


_LENGTHS = (("min_length", "min_items"), ("max_length", "max_items"))
_STRINGS = (("min_length", "min_length"), ("max_length", "max_length"), ("pattern", "pattern"))


def _members(info: Any) -> tuple[Any, ...]:
    return tuple(info.types) if isinstance(info, msgspec.inspect.UnionType) else (info,)


def _document_bounds(struct: type[msgspec.Struct], schema: Schema) -> None:
    """Bounds the generated schema lost: Litestar drops a bound of 0 (``ge=0``) and the
    constraints of a member of a union (``Annotated[list[str], Meta(max_length=4)] | None``).
    JSON Schema's numeric and array keywords only apply to numbers and arrays, so they sit on
    the property itself whatever else the union allows."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        prop = (schema.properties or {}).get(field.encode_name)
        if not isinstance(prop, Schema):
            continue
        for member in _members(field.type):
            pairs: tuple[tuple[str, str], ...] = ()
            if isinstance(member, msgspec.inspect.IntType | msgspec.inspect.FloatType):
                pairs = _BOUNDS
            elif isinstance(member, msgspec.inspect.StrType):
                pairs = _STRINGS
            elif isinstance(member, msgspec.inspect.ListType):
                pairs = _LENGTHS
                _document_items(prop, member.item_type)
            _fill(prop, member, pairs)


def _fill(prop: Schema, member: Any, pairs: tuple[tuple[str, str], ...]) -> None:
    for constraint, attribute in pairs:
        value = getattr(member, constraint)
        if value is not None and getattr(prop, attribute) is None:
            setattr(prop, attribute, value)


def _document_items(prop: Schema, item: Any) -> None:
    """String constraints of a list's items, on the array member's ``items`` schema."""
    if not isinstance(item, msgspec.inspect.StrType):
        return
    for candidate in (prop, *(prop.one_of or []), *(prop.any_of or [])):
        items = getattr(candidate, "items", None)
        if isinstance(items, Schema):
            _fill(items, item, _STRINGS)


def document_strict_bodies(app: Litestar) -> None:
    structs = {
        struct.__name__: struct
        for handlers in app.route_handler_method_map.values()
        for handler in handlers.values()
        if isinstance(handler, HTTPRouteHandler) and (body := _body_type(handler)) is not None
        for struct in _strict_structs(body)
    }
    for name, schema in (app.openapi_schema.components.schemas or {}).items():
        struct = structs.get(name.rsplit("_", 1)[-1])
        if struct is not None and isinstance(schema, Schema):
            schema.additional_properties = False
            _document_bounds(struct, schema)
