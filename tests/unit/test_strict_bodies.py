"""Strict request bodies: a well-typed body passes in one typed pass, an integral float still
counts as an integer, and anything lax decoding would coerce is a 400 before the handler runs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
import pytest
from litestar import Litestar, post
from litestar.params import JSONBody
from litestar.testing import TestClient, create_test_client

from kernel.strict_bodies import document_strict_bodies, validate_body_strictly


class Limits(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=0)]
    active: bool = True
    ratio: float = 0.5


seen: list[Limits] = []


@post("/limits", status_code=200)
async def set_limits(data: JSONBody[Limits]) -> dict[str, int]:
    seen.append(data)
    return {"count": data.count}


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ({"count": 5}, 5),
        ({"count": 5.0}, 5),
        ({"count": 5, "ratio": 1}, 5),
        ({"count": 7, "ratio": 2.0, "active": False}, 7),
    ],
)
def test_well_typed_bodies_reach_the_handler(body: dict[str, object], count: int) -> None:
    with create_test_client([set_limits], before_request=validate_body_strictly) as client:
        response = client.post("/limits", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"count": count}


@pytest.mark.parametrize(
    "body",
    [
        {"count": "5"},
        {"count": 5.5},
        {"count": -1},
        {"count": 1, "active": 0},
        {"count": 1, "extra": True},
        {},
    ],
)
def test_coercible_or_invalid_bodies_are_400_and_never_reach_the_handler(
    body: dict[str, object],
) -> None:
    seen.clear()
    with create_test_client([set_limits], before_request=validate_body_strictly) as client:
        response = client.post("/limits", json=body)
    assert response.status_code == 400
    assert seen == []


def test_malformed_json_is_400() -> None:
    with create_test_client([set_limits], before_request=validate_body_strictly) as client:
        response = client.post(
            "/limits", content=b'{"count": 5', headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert "not valid JSON" in response.text


Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+$")]
Value = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,8}$")]


class Rules(msgspec.Struct, forbid_unknown_fields=True):
    """Constraints at every depth, and a rule between two fields."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
    }

    tags: Annotated[
        dict[Key, Annotated[list[Value], msgspec.Meta(min_length=1, max_length=3)]],
        msgspec.Meta(max_length=5),
    ] = msgspec.field(default_factory=dict)
    names: Annotated[list[Value], msgspec.Meta(max_length=2, description="Named.")] | None = None
    a: int | None = None
    b: Annotated[int, msgspec.Meta(ge=0)] | None = None


@post("/rules", status_code=200)
async def set_rules(data: JSONBody[Rules]) -> None:
    return None


def test_the_document_carries_every_constraint_of_a_strict_body() -> None:
    """What a map's keys and values, a list's items (with a description) and a union member
    must be, and the struct's own rule between fields: all of it is in the OpenAPI document."""
    app = Litestar([set_rules])
    document_strict_bodies(app)
    with TestClient(app) as client:
        schema = client.get("/schema/openapi.json").json()["components"]["schemas"]["Rules"]
    assert schema["additionalProperties"] is False
    assert schema["oneOf"] == [{"required": ["a"]}, {"required": ["b"]}]
    tags = schema["properties"]["tags"]
    assert tags["propertyNames"] == {"pattern": "^[a-z]+$"}
    assert tags["maxProperties"] == 5
    values = tags["additionalProperties"]
    assert (values["minItems"], values["maxItems"]) == (1, 3)
    assert values["items"]["pattern"] == "^[!-~]{1,8}$"
    names = schema["properties"]["names"]
    assert names["maxItems"] == 2
    (array,) = [member for member in names["oneOf"] if member.get("type") == "array"]
    assert array["items"]["pattern"] == "^[!-~]{1,8}$"
    assert schema["properties"]["b"]["minimum"] == 0
