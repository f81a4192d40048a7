"""Bad input always gets a 4xx problem+json, and never changes what is stored."""

from __future__ import annotations

import pytest

from tests.support.http import assert_problem
from tests.support.tenants import Api


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"email": "x@y.example", "display_name": ', "malformed JSON"),
        (b'{"email": 5, "display_name": "X"}', "wrong type"),
        (b'{"email": "x@y.example", "display_name": "X", "admin": true}', "unknown field"),
        (b'{"display_name": "X"}', "missing field"),
        (b'{"email": "x@y.example", "display_name": "X", "roles": ["root"]}', "unknown role"),
        (b'{"email": "not-an-email", "display_name": "X"}', "bad email"),
        (b"[]", "not an object"),
        (b"", "empty body"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
async def test_malformed_bodies_are_400_and_store_nothing(api: Api, body: bytes, why: str) -> None:
    tenant = await api.new_tenant()
    response = await api.client.post(
        "/v1/admin/users",
        content=body,
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    users = await api.client.get("/v1/admin/users", headers=tenant.admin)
    assert len(users.json()["items"]) == 1, why  # only the bootstrap admin


async def test_oversized_body_is_413(api: Api) -> None:
    tenant = await api.new_tenant()
    huge = b'{"name": "' + b"a" * (10 * 1024 * 1024 + 1) + b'"}'
    response = await api.client.post(
        "/v1/admin/groups",
        content=huge,
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_bad_path_parameters_and_unknown_routes(api: Api) -> None:
    tenant = await api.new_tenant()
    assert_problem(await api.client.get("/v1/admin/users/not-a-uuid", headers=tenant.admin), 404)
    assert_problem(await api.client.get("/v1/nothing-here", headers=tenant.admin), 404)
    assert_problem(await api.client.put("/v1/me", headers=tenant.admin), 405)


async def test_bad_query_parameters_are_400(api: Api) -> None:
    tenant = await api.new_tenant()
    for query in ("limit=0", "limit=501", "limit=abc", "offset=-1"):
        assert_problem(await api.client.get(f"/v1/admin/users?{query}", headers=tenant.admin), 400)


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    echoed = await api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    hostile = await api.client.get("/healthz", headers={"X-Request-ID": 'a b"<script>'})
    assert hostile.headers["x-request-id"] != 'a b"<script>'
    assert len(hostile.headers["x-request-id"]) == 32
    problem = await api.client.get("/v1/me", headers={"X-Request-ID": "trace-me"})
    assert assert_problem(problem, 401)["request_id"] == "trace-me"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "nul@x.example", "display_name": "a\u0000b"},
        {"email": "ctl@x.example", "display_name": "\u001c"},
        {"email": "\u0130" * 300 + "@x.example", "display_name": "Long"},
        {"email": "sp ace@x.example", "display_name": "Space"},
    ],
)
async def test_hostile_strings_are_refused_cleanly(api: Api, payload: dict[str, str]) -> None:
    tenant = await api.new_tenant()
    response = await api.client.post("/v1/admin/users", json=payload, headers=tenant.admin)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "payload", [{"active": 0}, {"active": "false"}, {"roles": "member"}, {"display_name": 5}]
)
async def test_bodies_are_not_coerced(api: Api, payload: dict[str, object]) -> None:
    """Lax coercion would turn ``"active": 0`` into a deactivation; strict decoding refuses it."""
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    response = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json=payload, headers=tenant.admin
    )
    assert_problem(response, 400, "invalid_input")
    read = await api.client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
    assert read.json()["active"] is True
