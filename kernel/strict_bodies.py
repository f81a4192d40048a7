"""Request bodies are validated strictly, and the OpenAPI document says exactly that.

Litestar converts request bodies in msgspec's lax mode, which would accept ``"active": 0`` as
``false`` or ``"5"`` as 5. Before the handler runs, the raw JSON body is decoded once more in
strict mode against the handler's body type; anything lax mode would have coerced is a 400.
Most bodies pass a typed strict decoder in one pass; only one it refuses takes the slower path
that first reads integral floats (``5.0``) as integers, so the answer is the same either way.
Structs with ``forbid_unknown_fields`` are documented with ``additionalProperties: false``, with
every constraint of their fields at every depth (bounds, lengths, patterns, the keys and values
of maps, the items of lists), and with the rules between fields a struct declares in its
``json_schema_extra`` class variable: a request the document allows is one the server accepts.
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
from litestar.openapi.spec.enums import OpenAPIType


def _data_type(handler: HTTPRouteHandler) -> tuple[Any, Any]:
    """The msgspec Struct of a request body (or None), and its media type (None: JSON)."""
    data = handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(data, "annotation", None)
    media_type = getattr(getattr(data, "kwarg_definition", None), "media_type", None)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation, media_type
    return None, media_type


@cache
def _body_type(handler: HTTPRouteHandler) -> Any:
    """The msgspec Struct of a JSON request body (form bodies, e.g. SAML's ACS, are not JSON)."""
    body_type, media_type = _data_type(handler)
    return body_type if media_type in (None, RequestEncodingType.JSON) else None


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
_STRINGS = (("min_length", "min_length"), ("max_length", "max_length"), ("pattern", "pattern"))
_ARRAYS = (("min_length", "min_items"), ("max_length", "max_items"))
_OBJECTS = (("min_length", "min_properties"), ("max_length", "max_properties"))


def _unwrapped(info: Any) -> Any:
    # A type with a description (``Meta(description=...)``) comes wrapped in its metadata.
    return info.type if isinstance(info, msgspec.inspect.Metadata) else info


def _members(info: Any) -> tuple[Any, ...]:
    info = _unwrapped(info)
    members = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return tuple(_unwrapped(member) for member in members)


def _fill(schema: Schema, member: Any, pairs: tuple[tuple[str, str], ...]) -> None:
    for constraint, attribute in pairs:
        value = getattr(member, constraint)
        if value is not None and getattr(schema, attribute) is None:
            setattr(schema, attribute, value)


def _candidates(schema: Schema, kind: OpenAPIType) -> list[Schema]:
    """The schema of one JSON type inside ``schema``: itself, or a member of its union."""
    members = [schema, *(schema.one_of or []), *(schema.any_of or [])]
    return [
        member
        for member in members
        if isinstance(member, Schema)
        and (member.type == kind or (isinstance(member.type, list) and kind in member.type))
    ]


def _document(schema: Schema, info: Any) -> None:
    """Write the constraints of the msgspec type ``info`` into ``schema``, at every depth.

    Litestar's generated schema loses a bound of 0 (``ge=0``), the constraints of a member of a
    union (``Annotated[list[str], Meta(max_length=4)] | None``), and everything inside a list's
    items or a map's keys and values. JSON Schema's keywords for one type only apply to values of
    that type, so the bounds sit on the property itself whatever else the union allows; item and
    value schemas sit inside the member of that type."""
    for member in _members(info):
        if isinstance(member, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            _fill(schema, member, _BOUNDS)
        elif isinstance(member, msgspec.inspect.StrType):
            _fill(schema, member, _STRINGS)
        elif isinstance(member, msgspec.inspect.ListType):
            _fill(schema, member, _ARRAYS)
            for array in _candidates(schema, OpenAPIType.ARRAY):
                if isinstance(array.items, Schema):
                    _document(array.items, member.item_type)
        elif isinstance(member, msgspec.inspect.DictType):
            _fill(schema, member, _OBJECTS)
            key = member.key_type
            if isinstance(key, msgspec.inspect.StrType) and schema.property_names is None:
                names = Schema()
                _fill(names, key, _STRINGS)
                if names != Schema():
                    schema.property_names = names
            for mapping in _candidates(schema, OpenAPIType.OBJECT):
                if isinstance(mapping.additional_properties, Schema):
                    _document(mapping.additional_properties, member.value_type)


def _document_struct(struct: type[msgspec.Struct], schema: Schema) -> None:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        prop = (schema.properties or {}).get(field.encode_name)
        if isinstance(prop, Schema):
            _document(prop, field.type)
    # Rules between fields (exactly one of, at least one of) that no field type can carry, and
    # ``properties`` whose schema the server narrows further than their type says.
    aliases = schema.field_aliases()
    for keyword, value in getattr(struct, "json_schema_extra", {}).items():
        if keyword == "properties":
            schema.properties = {**(schema.properties or {}), **value}
        else:
            setattr(schema, aliases.get(keyword, keyword), value)


def document_strict_bodies(app: Litestar) -> None:
    handlers = [
        handler
        for methods in app.route_handler_method_map.values()
        for handler in methods.values()
        if isinstance(handler, HTTPRouteHandler)
    ]
    strict = {
        struct.__name__: struct
        for handler in handlers
        if (body := _body_type(handler)) is not None
        for struct in _strict_structs(body)
    }
    # Form bodies (multipart, urlencoded) are not strict JSON, but their rules are documented too.
    forms = {
        form.__name__: form
        for handler in handlers
        if (form := _data_type(handler)[0]) is not None and form.__name__ not in strict
    }
    for name, schema in (app.openapi_schema.components.schemas or {}).items():
        if not isinstance(schema, Schema):
            continue
        key = name.rsplit("_", 1)[-1]
        if (struct := strict.get(key)) is not None:
            schema.additional_properties = False
            _document_struct(struct, schema)
        elif (form := forms.get(key)) is not None:
            _document_struct(form, schema)
