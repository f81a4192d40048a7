"""Strict request bodies: a well-typed body passes in one typed pass, an integral float still
counts as an integer, and anything lax decoding would coerce is a 400 before the handler runs."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from litestar import post
from litestar.params import JSONBody
from litestar.testing import create_test_client

from app.strict_bodies import validate_body_strictly


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
