"""Tenant B, authenticated as its admin, against tenant A's resources: 404s and empty lists.

B is in A's own region (so only repository scoping and RLS stand between them) and C is in the
other region. Every tenant route of the app must appear in ``ISOLATION_ROUTES`` (or, for SCIM,
``SCIM_ROUTES``) below (see ``test_every_route_is_covered``), so a new route cannot ship without
joining this suite.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from litestar import Litestar

from app.runtime import Runtime
from retrieval.repositories import DocumentRepository
from tests.saml_idp import (
    Assertion,
    MetadataServer,
    TestIdp,
    configure,
    okta_idp,
    okta_metadata,
    post_acs,
    session_cookie,
    start_login,
)
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle, context_of

# (method, path template) of every route reachable with a tenant credential.
ISOLATION_ROUTES = {
    ("GET", "/v1/me"),
    ("GET", "/v1/admin/users"),
    ("POST", "/v1/admin/users"),
    ("GET", "/v1/admin/users/{user_id:uuid}"),
    ("PATCH", "/v1/admin/users/{user_id:uuid}"),
    ("GET", "/v1/admin/groups"),
    ("POST", "/v1/admin/groups"),
    ("GET", "/v1/admin/groups/{group_id:uuid}"),
    ("PUT", "/v1/admin/groups/{group_id:uuid}/members/{user_id:uuid}"),
    ("DELETE", "/v1/admin/groups/{group_id:uuid}/members/{user_id:uuid}"),
    ("GET", "/v1/admin/api-keys"),
    ("POST", "/v1/admin/api-keys"),
    ("DELETE", "/v1/admin/api-keys/{key_id:uuid}"),
    ("GET", "/v1/admin/kms"),
    ("PUT", "/v1/admin/kms"),
    ("POST", "/v1/admin/kms/rotate"),
    ("GET", "/v1/admin/role-mappings"),
    ("PUT", "/v1/admin/role-mappings"),
    ("POST", "/auth/logout"),
    ("GET", "/v1/admin/sso/oidc"),
    ("PUT", "/v1/admin/sso/oidc"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/admin/sso/saml"),
    ("PUT", "/v1/admin/sso/saml"),
    ("POST", "/v1/admin/sso/saml/metadata"),
    ("POST", "/v1/admin/sso/saml/metadata/refresh"),
    # Unauthenticated, scoped by the tenant slug in the path (test_saml_is_per_tenant).
    ("GET", "/auth/{tenant:str}/saml/metadata"),
    ("GET", "/auth/{tenant:str}/saml/login"),
    ("POST", "/auth/{tenant:str}/saml/acs"),
    ("POST", "/v1/admin/scim-token"),
    ("POST", "/v1/documents"),
    ("POST", "/v1/documents/upload"),
    ("POST", "/v1/documents/reindex"),
    ("GET", "/v1/documents"),
    ("GET", "/v1/documents/{document_id:uuid}"),
    ("PATCH", "/v1/documents/{document_id:uuid}/acl"),
    ("DELETE", "/v1/documents/{document_id:uuid}"),
    ("GET", "/v1/jobs/{job_id:uuid}"),
    ("POST", "/v1/search"),
    # Gateway (test_gateway_is_per_tenant below).
    ("POST", "/v1/gateway/chat/completions"),
    ("POST", "/v1/gateway/batches"),
    ("GET", "/v1/gateway/batches/{batch_id:uuid}"),
    ("GET", "/v1/admin/quotas"),
    ("PUT", "/v1/admin/quotas"),
    ("GET", "/v1/admin/model-policy"),
    ("PUT", "/v1/admin/model-policy"),
    ("GET", "/v1/admin/byo-models"),
    ("PUT", "/v1/admin/byo-models/{tier:str}"),
    ("DELETE", "/v1/admin/byo-models/{tier:str}"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/admin/dlp"),
    ("PUT", "/v1/admin/dlp"),
    # Chat (test_chat_is_per_tenant below).
    ("POST", "/v1/chat"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/chat/sessions"),
    ("GET", "/v1/chat/sessions/{session_id:uuid}"),
    ("DELETE", "/v1/chat/sessions/{session_id:uuid}"),
    ("GET", "/v1/admin/chat"),
    ("PUT", "/v1/admin/chat"),
    ("GET", "/v1/models"),
    # Subject-access requests (test_subject_access_requests_are_per_tenant below).
    ("POST", "/v1/sar"),
    ("GET", "/v1/sar/{request_id:uuid}"),
    ("GET", "/v1/sar/{request_id:uuid}/export"),
    ("GET", "/v1/admin/retention"),
    ("PUT", "/v1/admin/retention"),
    ("GET", "/v1/admin/debug/raw-content"),
    ("PUT", "/v1/admin/debug/raw-content"),
    ("DELETE", "/v1/admin/debug/raw-content"),
}
# SCIM, reached with a tenant's SCIM token (see test_scim_token_reaches_only_its_own_tenant).
_SCIM = "/scim/v2/{tenant:str}"
SCIM_ROUTES = {
    ("GET", f"{_SCIM}/ServiceProviderConfig"),
    ("GET", f"{_SCIM}/ResourceTypes"),
    ("GET", f"{_SCIM}/ResourceTypes/{{resource_type_id:str}}"),
    ("GET", f"{_SCIM}/Schemas"),
    ("GET", f"{_SCIM}/Schemas/{{schema_id:str}}"),
    ("POST", f"{_SCIM}/.search"),
    ("GET", f"{_SCIM}/Users"),
    ("POST", f"{_SCIM}/Users"),
    ("POST", f"{_SCIM}/Users/.search"),
    ("GET", f"{_SCIM}/Users/{{user_id:str}}"),
    ("PUT", f"{_SCIM}/Users/{{user_id:str}}"),
    ("PATCH", f"{_SCIM}/Users/{{user_id:str}}"),
    ("DELETE", f"{_SCIM}/Users/{{user_id:str}}"),
    ("GET", f"{_SCIM}/Groups"),
    ("POST", f"{_SCIM}/Groups"),
    ("POST", f"{_SCIM}/Groups/.search"),
    ("GET", f"{_SCIM}/Groups/{{group_id:str}}"),
    ("PUT", f"{_SCIM}/Groups/{{group_id:str}}"),
    ("PATCH", f"{_SCIM}/Groups/{{group_id:str}}"),
    ("DELETE", f"{_SCIM}/Groups/{{group_id:str}}"),
}
# The console (test_console_is_per_tenant below): pages and forms under the tenant's slug.
_CONSOLE = "/console/{tenant:str}"
CONSOLE_ROUTES = {
    ("GET", "/console"),
    ("GET", _CONSOLE),
    ("GET", f"{_CONSOLE}/home"),
    ("POST", f"{_CONSOLE}/logout"),
    ("GET", f"{_CONSOLE}/overview"),
    ("GET", f"{_CONSOLE}/users"),
    ("POST", f"{_CONSOLE}/users/{{user_id:uuid}}"),
    ("POST", f"{_CONSOLE}/role-mappings"),
    ("GET", f"{_CONSOLE}/sso"),
    ("POST", f"{_CONSOLE}/sso/oidc"),
    ("POST", f"{_CONSOLE}/sso/saml"),
    ("POST", f"{_CONSOLE}/scim-token"),
    ("GET", f"{_CONSOLE}/dlp"),
    ("POST", f"{_CONSOLE}/dlp"),
    ("GET", f"{_CONSOLE}/models"),
    ("POST", f"{_CONSOLE}/models/policy"),
    ("POST", f"{_CONSOLE}/models/quotas"),
    ("GET", f"{_CONSOLE}/kms"),
    ("POST", f"{_CONSOLE}/kms"),
    ("POST", f"{_CONSOLE}/kms/rotate"),
    ("GET", f"{_CONSOLE}/documents"),
    ("POST", f"{_CONSOLE}/documents"),
    ("GET", f"{_CONSOLE}/documents/{{document_id:uuid}}"),
    ("POST", f"{_CONSOLE}/documents/{{document_id:uuid}}/acl"),
    ("POST", f"{_CONSOLE}/documents/{{document_id:uuid}}/delete"),
    ("GET", f"{_CONSOLE}/audit"),
    ("GET", f"{_CONSOLE}/audit/verify"),
    ("GET", f"{_CONSOLE}/sar"),
    ("POST", f"{_CONSOLE}/sar"),
    ("GET", f"{_CONSOLE}/sar/{{request_id:uuid}}"),
    ("GET", f"{_CONSOLE}/sar/{{request_id:uuid}}/report.json"),
    ("GET", f"{_CONSOLE}/playground"),
    ("POST", f"{_CONSOLE}/playground"),
}
# Routes with no tenant data: health, metrics, the schema, and the operator's control plane
# (covered by tests/integration/test_tenants.py, which shows tenant keys get 403 there).
NON_TENANT_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants/{tenant_id:uuid}"),
    ("PATCH", "/v1/tenants/{tenant_id:uuid}"),
    ("DELETE", "/v1/tenants/{tenant_id:uuid}"),
    # Sign-in flows: the tenant is named in the path, the caller is not yet authenticated
    # (tests/integration/test_oidc.py shows a callback cannot complete another tenant's login).
    ("GET", "/auth/{tenant_slug:str}/oidc/login"),
    ("GET", "/auth/{tenant_slug:str}/oidc/callback"),
    ("POST", "/v1/tenants/{tenant_id:uuid}/admins"),
    # The console's own script and style sheet.
    ("GET", "/console/static/{file_path:path}"),
}


def test_every_route_is_covered(app: Litestar) -> None:
    routes = set()
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue
        for method in getattr(route, "methods", ()):
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method, route.path))
    covered = ISOLATION_ROUTES | NON_TENANT_ROUTES | SCIM_ROUTES | CONSOLE_ROUTES
    assert routes - covered == set()
    assert routes >= SCIM_ROUTES | CONSOLE_ROUTES


@pytest.fixture
async def world(api: Api) -> dict[str, Any]:
    a = await api.new_tenant("eu")
    b = await api.new_tenant("eu")
    c = await api.new_tenant("us")
    user = await api.new_user(a)
    group = await api.new_group(a, "finance")
    await api.client.put(f"/v1/admin/groups/{group['id']}/members/{user['id']}", headers=a.admin)
    key = await api.new_key(a, user["id"])
    return {"a": a, "b": b, "c": c, "user": user, "group": group, "key": key}


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_reads_of_another_tenant_are_404_or_empty(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    other: TenantHandle = world[intruder]
    user, group, key = world["user"], world["group"], world["key"]
    assert_problem(
        await api.client.patch(
            f"/v1/admin/users/{user['id']}", json={"active": False}, headers=other.admin
        ),
        404,
        "user_not_found",
    )
    assert_problem(
        await api.client.get(f"/v1/admin/users/{user['id']}", headers=other.admin),
        404,
        "user_not_found",
    )
    assert_problem(
        await api.client.get(f"/v1/admin/groups/{group['id']}", headers=other.admin),
        404,
        "group_not_found",
    )
    for path, own_id in (
        ("/v1/admin/users", other.admin_id),
        ("/v1/admin/groups", None),
        ("/v1/admin/api-keys", None),
    ):
        listed = await api.client.get(path, headers=other.admin)
        ids = {item["id"] for item in listed.json()["items"]}
        assert not ids & {user["id"], group["id"], key["id"], world["a"].admin_id}
        if own_id:
            assert ids == {own_id}
    me = await api.client.get("/v1/me", headers=other.admin)
    assert me.json()["tenant"]["id"] == other.id


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_writes_to_another_tenant_are_404_and_change_nothing(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    user, group, key = world["user"], world["group"], world["key"]
    member = f"/v1/admin/groups/{group['id']}/members/{user['id']}"
    assert_problem(await api.client.put(member, headers=other.admin), 404, "group_not_found")
    assert_problem(await api.client.delete(member, headers=other.admin), 404, "group_not_found")

    own_group = await api.new_group(other)
    assert_problem(
        await api.client.put(
            f"/v1/admin/groups/{own_group['id']}/members/{user['id']}", headers=other.admin
        ),
        404,
        "user_not_found",
    )
    assert_problem(
        await api.client.post(
            "/v1/admin/api-keys", json={"user_id": user["id"], "name": "steal"}, headers=other.admin
        ),
        404,
        "user_not_found",
    )
    assert_problem(
        await api.client.delete(f"/v1/admin/api-keys/{key['id']}", headers=other.admin),
        404,
        "api_key_not_found",
    )

    # A's data is intact and A's key still works.
    me = await api.client.get("/v1/me", headers=bearer(key["key"]))
    assert me.status_code == 200 and me.json()["group_ids"] == [group["id"]]
    read = await api.client.get(f"/v1/admin/groups/{group['id']}", headers=a.admin)
    assert read.json()["member_ids"] == [user["id"]]


async def test_same_names_in_two_tenants_do_not_collide(api: Api, world: dict[str, Any]) -> None:
    b: TenantHandle = world["b"]
    await api.new_group(b, "finance")
    await api.new_user(b, email=world["user"]["email"])


async def test_a_key_cannot_be_replayed_against_another_tenant(
    api: Api, world: dict[str, Any]
) -> None:
    a: TenantHandle = world["a"]
    b: TenantHandle = world["b"]
    forged = a.admin_key.replace(a.id.replace("-", ""), b.id.replace("-", ""))
    assert_problem(
        await api.client.get("/v1/me", headers=bearer(forged)), 401, "invalid_credentials"
    )


async def test_kms_settings_are_per_tenant(api: Api, world: dict[str, Any]) -> None:
    a: TenantHandle = world["a"]
    b: TenantHandle = world["b"]
    a_kms = (await api.client.get("/v1/admin/kms", headers=a.admin)).json()
    b_kms = (await api.client.get("/v1/admin/kms", headers=b.admin)).json()
    assert a_kms["key_id"] != b_kms["key_id"]
    # B cannot adopt A's key (the key serves A's contexts only), nor rotate A's keys.
    response = await api.client.put(
        "/v1/admin/kms",
        json={"provider": "local", "key_id": a_kms["key_id"], "region": "eu"},
        headers=b.admin,
    )
    assert_problem(response, 422, "kms_key_rejected")
    await api.client.post("/v1/admin/kms/rotate", headers=b.admin)
    after = (await api.client.get("/v1/admin/kms", headers=a.admin)).json()
    assert after["current_version"] == a_kms["current_version"]


async def _all_events(api: Api, tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor is not None else {})}
        page = await api.client.get("/v1/audit/events", params=query, headers=tenant.admin)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_audit_log_of_another_tenant_is_invisible(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    a_events = await _all_events(api, a)
    own = await _all_events(api, other)
    assert len(a_events) >= 8 and own  # A's admin actions; B's own creation and bootstrap
    assert not {e["id"] for e in own} & {e["id"] for e in a_events}
    assert not {e["hash"] for e in own} & {e["hash"] for e in a_events}
    a_resources = {world["user"]["id"], world["group"]["id"], world["key"]["id"], a.admin_id}
    assert not {e["resource_id"] for e in own} & a_resources
    # Filters never reach into A: by A's resources, by A's user, by A's pseudonyms.
    assert await _all_events(api, other, resource_id=world["group"]["id"]) == []
    assert await _all_events(api, other, actor=f"user:{a.admin_id}") == []
    for actor in {e["actor"] for e in a_events}:
        assert await _all_events(api, other, actor=actor) == []

    verify = await api.client.get("/v1/audit/verify", headers=other.admin)
    assert verify.json() == {"ok": True, "events_checked": len(own), "first_bad_sequence": None}

    export = await api.client.get("/v1/audit/export", headers=other.admin)
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert {line["tenant_id"] for line in lines} == {other.id}
    assert [line["hash"] for line in lines] == [e["hash"] for e in own]
    csv_export = await api.client.get("/v1/audit/export?format=csv", headers=other.admin)
    assert a.id not in csv_export.text and world["user"]["id"] not in csv_export.text

    checkpoint = (await api.client.get("/v1/audit/checkpoint", headers=other.admin)).json()
    assert checkpoint["tenant_id"] == other.id
    assert (checkpoint["sequence"], checkpoint["head_hash"]) == (
        own[-1]["sequence"],
        own[-1]["hash"],
    )


async def test_role_mappings_are_per_tenant(api: Api, world: dict[str, Any]) -> None:
    a: TenantHandle = world["a"]
    b: TenantHandle = world["b"]
    body = {
        "default_role": "member",
        "mappings": [{"idp_group": "finance", "role": "tenant_admin"}],
    }
    await api.client.put("/v1/admin/role-mappings", json=body, headers=b.admin)
    # A's user is in A's "finance" group: B's mapping gives them nothing.
    me = (await api.client.get("/v1/me", headers=bearer(world["key"]["key"]))).json()
    assert me["roles"] == ["member"]
    a_view = (await api.client.get("/v1/admin/role-mappings", headers=a.admin)).json()
    assert a_view["mappings"] == []


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_saml_is_per_tenant(api: Api, world: dict[str, Any], intruder: str) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    idp = TestIdp()  # one IdP that both tenants trust (one company's Okta, say)
    sp_a, config_a = await configure(api, a, idp)
    assert_problem(
        await api.client.get("/v1/admin/sso/saml", headers=other.admin), 404, "saml_not_configured"
    )
    sp_b, _ = await configure(api, other, idp, attributes={"email": ["mail"]})
    assert sp_b.entity_id != sp_a.entity_id and sp_b.acs_url != sp_a.acs_url
    assert (await api.client.get("/v1/admin/sso/saml", headers=a.admin)).json() == config_a

    try:
        login_a = await start_login(api, a.slug)
        login_b = await start_login(api, other.slug)
        user = Assertion(attributes={"email": [world["user"]["email"]], "mail": ["x@evil.test"]})
        for_a = idp.encoded(sp_a, login_a.request_id, user)
        # A's response at B's ACS: with B's login state, with A's, and re-aimed at B's request.
        refused = [
            (login_b.state_cookie, for_a, "saml_unsolicited_response"),
            (login_a.state_cookie, for_a, "saml_invalid_state"),
            (
                login_b.state_cookie,
                idp.encoded(sp_a, login_b.request_id, user),
                "saml_wrong_destination",
            ),
        ]
        for state, saml_response, code in refused:
            assert_problem(await post_acs(api, other.slug, saml_response, state=state), 401, code)

        # The failures are B's events; A's response still works where it belongs.
        b_events = await _all_events(api, other, action="sso.login")
        assert [e["detail"]["reason"] for e in b_events] == [code for _, _, code in refused]
        assert await _all_events(api, a, action="sso.login") == []
        ok = await post_acs(api, a.slug, for_a, state=login_a.state_cookie)
        assert ok.status_code == 303, ok.text
        me = (await api.client.get("/v1/me", headers=session_cookie(ok))).json()
        assert (me["tenant"]["id"], me["user"]["id"]) == (a.id, world["user"]["id"])
        users = (await api.client.get("/v1/admin/users", headers=other.admin)).json()["items"]
        assert [u["id"] for u in users] == [other.admin_id]
    finally:
        api.client.cookies.clear()


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_saml_metadata_import_is_per_tenant(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    """B's imports and refreshes touch B's settings only; A's stored URL is never B's."""
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    metadata, refresh = "/v1/admin/sso/saml/metadata", "/v1/admin/sso/saml/metadata/refresh"
    idp_a, idp_b = okta_idp(), okta_idp()
    with MetadataServer() as server:
        server.serve(okta_metadata(idp_a))
        imported = await api.client.post(
            metadata, json={"metadata_url": server.url()}, headers=a.admin
        )
        assert imported.status_code == 200, imported.text
        config_a = imported.json()
        # B has nothing to refresh: A's URL and settings are not B's.
        assert_problem(await api.client.post(refresh, headers=other.admin), 404)
        assert_problem(await api.client.get("/v1/admin/sso/saml", headers=other.admin), 404)
        assert len(server.requests) == 1
        # B imports its own IdP (the same document shape, another entity).
        b_config = await api.client.post(
            metadata, json={"metadata_xml": okta_metadata(idp_b)}, headers=other.admin
        )
        assert b_config.status_code == 200, b_config.text
        assert b_config.json()["idp_entity_id"] == idp_b.entity_id
        assert b_config.json()["metadata_url"] is None
        assert_problem(await api.client.post(refresh, headers=other.admin), 409)
        assert (await api.client.get("/v1/admin/sso/saml", headers=a.admin)).json() == config_a
        # A's refresh reads A's URL only.
        refreshed = await api.client.post(refresh, headers=a.admin)
        assert refreshed.json()["idp_entity_id"] == idp_a.entity_id
        assert len(server.requests) == 2
    b_events = await _all_events(api, other, action="sso.configured")
    assert [e["detail"]["source"] for e in b_events] == ["metadata_xml"]
    a_events = await _all_events(api, a, action="sso.configured")
    assert [e["detail"]["source"] for e in a_events] == ["metadata_url", "metadata_url"]


SCIM_JSON = "application/scim+json"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _scim_token(api: Api, tenant: TenantHandle) -> dict[str, str]:
    issued = await api.client.post("/v1/admin/scim-token", headers=tenant.admin)
    assert issued.status_code == 201, issued.text
    return {**bearer(issued.json()["token"]), "Content-Type": SCIM_JSON}


def _scim_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_scim_token_reaches_only_its_own_tenant(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    a_token = await _scim_token(api, a)
    other_token = await _scim_token(api, other)
    a_scim, other_scim = f"/scim/v2/{a.slug}", f"/scim/v2/{other.slug}"
    user, group = world["user"], world["group"]

    # A's token on the other tenant's URL: 401, whatever the endpoint.
    for method, path in (
        ("GET", "/Users"),
        ("GET", f"/Users/{other.admin_id}"),
        ("GET", "/Groups"),
        ("GET", "/ServiceProviderConfig"),
        ("POST", "/.search"),
        ("DELETE", f"/Users/{other.admin_id}"),
    ):
        _scim_error(await api.client.request(method, other_scim + path, headers=a_token), 401)

    # The other tenant's token on its own URL cannot reach A's users and groups by id.
    patch = {
        "schemas": [SCIM_PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "pwned"}],
    }
    for path in (f"/Users/{user['id']}", f"/Groups/{group['id']}"):
        _scim_error(await api.client.get(other_scim + path, headers=other_token), 404)
        _scim_error(await api.client.patch(other_scim + path, json=patch, headers=other_token), 404)
        _scim_error(
            await api.client.put(
                other_scim + path,
                json={"schemas": [SCIM_USER], "userName": "pwned", "displayName": "pwned"},
                headers=other_token,
            ),
            404,
        )
        _scim_error(await api.client.delete(other_scim + path, headers=other_token), 404)
    # ... nor find them with a filter, nor make A's user a member of its own group.
    for path, scim_filter in (
        ("/Users", f'id eq "{user["id"]}" or userName eq "{user["email"]}"'),
        ("/Groups", f'id eq "{group["id"]}" or displayName eq "finance"'),
        ("/Groups", f'members.value eq "{user["id"]}"'),
    ):
        listed = await api.client.get(
            other_scim + path, params={"filter": scim_filter}, headers=other_token
        )
        assert listed.json()["totalResults"] == 0, listed.text
    everything = await api.client.post(
        other_scim + "/.search", json={"count": 200}, headers=other_token
    )
    ids = {r["id"] for r in everything.json()["Resources"]}
    assert ids == {other.admin_id}
    own_group = await api.client.post(
        other_scim + "/Groups",
        json={
            "schemas": [SCIM_GROUP],
            "displayName": "finance",
            "members": [{"value": user["id"]}],
        },
        headers=other_token,
    )
    _scim_error(own_group, 400)

    # A's data is intact, and A's own token still reads it.
    read = await api.client.get(f"{a_scim}/Groups/{group['id']}", headers=a_token)
    assert read.json()["displayName"] == "finance"
    assert [m["value"] for m in read.json()["members"]] == [user["id"]]
    a_user = await api.client.get(f"{a_scim}/Users/{user['id']}", headers=a_token)
    assert a_user.json()["userName"] == user["email"]


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_documents_and_search_are_per_tenant(
    api: Api, runtime: Runtime, world: dict[str, Any], intruder: str
) -> None:
    from tests.support.documents import add, search

    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    sentence = f"The vault combination for site {uuid.uuid4().hex[:6]} is 31-7-59."
    doc = await add(api, a, "Vault", f"# Vault\n\n{sentence}", acl={"visibility": "tenant"})
    assert await search(api, a.admin, sentence)
    assert await search(api, other.admin, sentence) == []
    doc_id, job_id = doc["document_id"], doc["job_id"]
    for response in (
        await api.client.get(f"/v1/documents/{doc_id}", headers=other.admin),
        await api.client.patch(
            f"/v1/documents/{doc_id}/acl", json={"visibility": "tenant"}, headers=other.admin
        ),
        await api.client.delete(f"/v1/documents/{doc_id}", headers=other.admin),
        await api.client.get(f"/v1/jobs/{job_id}", headers=other.admin),
    ):
        assert_problem(response, 404)
    listed = (await api.client.get("/v1/documents", headers=other.admin)).json()["items"]
    assert doc_id not in {d["id"] for d in listed}
    assert (await api.client.get(f"/v1/documents/{doc_id}", headers=a.admin)).status_code == 200

    # A re-index is per tenant: B's job neither counts nor touches A's stale document, and
    # A cannot see B's job.
    ctx = context_of(a)
    async with runtime.registry.tenant_transaction(ctx) as session:
        stale = await DocumentRepository(session, ctx).get(uuid.UUID(doc_id))
        assert stale is not None
        stale.index_version = 1
    job = (await api.client.post("/v1/documents/reindex", headers=other.admin)).json()
    assert job["total"] == 0
    assert_problem(await api.client.get(f"/v1/jobs/{job['id']}", headers=a.admin), 404)
    read = await api.client.get(f"/v1/documents/{doc_id}", headers=a.admin)
    assert read.json()["index_version"] == 1


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_gateway_is_per_tenant(api: Api, world: dict[str, Any], intruder: str) -> None:
    """Quotas, policy, BYO models, usage and batches of A are invisible to B and C, and their
    writes change only their own. (The default embedded fleet has no reachable model here, so
    A's batch stays queued or fails; what matters is who can see it.)"""
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    assert (
        await api.client.put(
            "/v1/admin/quotas", json={"tenant": {"day": {"tokens": 5}}}, headers=a.admin
        )
    ).status_code == 200
    assert (
        await api.client.put("/v1/admin/model-policy", json={"pinned": "small"}, headers=a.admin)
    ).status_code == 200
    byo = await api.client.put(
        "/v1/admin/byo-models/mid",
        json={"provider": "openai", "base_url": "http://127.0.0.1:9", "model": "m", "api_key": "k"},
        headers=a.admin,
    )
    assert byo.status_code == 200, byo.text
    batch = await api.client.post(
        "/v1/gateway/batches",
        json={"requests": [{"messages": [{"role": "user", "content": "hi"}]}]},
        headers=a.admin,
    )
    assert batch.status_code == 202, batch.text

    quotas = (await api.client.get("/v1/admin/quotas", headers=other.admin)).json()
    assert quotas["tenant"]["day"] is None
    policy = (await api.client.get("/v1/admin/model-policy", headers=other.admin)).json()
    assert policy["pinned"] is None
    assert (await api.client.get("/v1/admin/byo-models", headers=other.admin)).json() == {
        "items": []
    }
    assert_problem(
        await api.client.delete("/v1/admin/byo-models/mid", headers=other.admin),
        404,
        "byo_model_not_found",
    )
    assert_problem(
        await api.client.get(f"/v1/gateway/batches/{batch.json()['id']}", headers=other.admin),
        404,
        "batch_not_found",
    )
    assert (await api.client.get("/v1/usage", headers=other.admin)).json()["items"] == []
    # B's own writes leave A's settings alone.
    await api.client.put("/v1/admin/quotas", json={}, headers=other.admin)
    await api.client.put("/v1/admin/model-policy", json={}, headers=other.admin)
    assert (await api.client.get("/v1/admin/quotas", headers=a.admin)).json()["tenant"]["day"][
        "tokens"
    ] == 5
    assert len((await api.client.get("/v1/admin/byo-models", headers=a.admin)).json()["items"]) == 1
    # A chat completion of B never uses A's BYO model or A's pin: B's own (embedded) fleet.
    response = await api.client.post(
        "/v1/gateway/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "model": "mid"},
        headers=other.admin,
    )
    assert response.status_code in (200, 503), response.text
    if response.status_code == 503:
        assert response.json()["code"] in ("no_models_configured", "model_unavailable")


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_dlp_policies_are_per_tenant(api: Api, world: dict[str, Any], intruder: str) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    a_policy = {
        "entities": [{"type": "CREDIT_CARD", "inbound": "block"}],
        "custom": [{"type": "A_SECRET_CODE", "terms": ["Kestrel"]}],
        "allow_list": ["a-only@example.com"],
    }
    a_policy["entities"].append({"type": "A_SECRET_CODE", "inbound": "redact"})
    assert (
        await api.client.put("/v1/admin/dlp", json=a_policy, headers=a.admin)
    ).status_code == 200
    seen = (await api.client.get("/v1/admin/dlp", headers=other.admin)).json()
    assert seen["configured"] is False and seen["custom"] == []
    assert "Kestrel" not in json.dumps(seen) and "a-only@example.com" not in json.dumps(seen)
    # B's own policy never changes A's, and A's block does not apply to B's searches.
    own = {"entities": [{"type": "PERSON", "inbound": "redact"}]}
    assert (await api.client.put("/v1/admin/dlp", json=own, headers=other.admin)).status_code == 200
    after = (await api.client.get("/v1/admin/dlp", headers=a.admin)).json()
    assert after["version"] == 1 and [e["type"] for e in after["entities"]] == [
        "CREDIT_CARD",
        "A_SECRET_CODE",
    ]
    query = {"query": "refund to card 4111 1111 1111 1111", "top_k": 1}
    assert (await api.client.post("/v1/search", json=query, headers=other.admin)).status_code == 200
    assert_problem(
        await api.client.post("/v1/search", json=query, headers=a.admin),
        422,
        "personal_data_blocked",
    )


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_chat_is_per_tenant(api: Api, world: dict[str, Any], intruder: str) -> None:
    """A's sessions and chat policy are invisible to B and C; B's writes change only B's. (The
    answers and the cache across tenants: tests/integration/chat.)"""
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    asked = await api.client.post(
        "/v1/chat", json={"message": "What is our travel policy?"}, headers=a.admin
    )
    assert asked.status_code == 200, asked.text
    session_id = asked.json()["session_id"]
    put = await api.client.put(
        "/v1/admin/chat", json={"mode": "extractive", "cache_threshold": 0.99}, headers=a.admin
    )
    assert put.status_code == 200, put.text

    for method in ("GET", "DELETE"):
        assert_problem(
            await api.client.request(
                method, f"/v1/chat/sessions/{session_id}", headers=other.admin
            ),
            404,
            "chat_session_not_found",
        )
    listed = (await api.client.get("/v1/chat/sessions", headers=other.admin)).json()
    assert session_id not in {s["id"] for s in listed["items"]}
    assert_problem(
        await api.client.post(
            "/v1/chat",
            json={"message": "More please", "session_id": session_id},
            headers=other.admin,
        ),
        404,
        "chat_session_not_found",
    )
    # B's own policy: never set, so the deployment decides its mode (not A's "extractive").
    assert (await api.client.get("/v1/admin/chat", headers=other.admin)).json()["mode"] is None
    await api.client.put("/v1/admin/chat", json={"parallel": True}, headers=other.admin)
    mine = (await api.client.get("/v1/admin/chat", headers=a.admin)).json()
    assert (mine["mode"], mine["parallel"]) == ("extractive", False)
    assert (
        await api.client.get(f"/v1/chat/sessions/{session_id}", headers=a.admin)
    ).status_code == 200
    assert (await api.client.get("/v1/models", headers=other.admin)).status_code == 200


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_subject_access_requests_are_per_tenant(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    """A compliance officer of B or C can neither find nor erase a person of A, nor read A's
    requests."""
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    user = world["user"]

    async def officer(tenant: TenantHandle) -> dict[str, str]:
        created = await api.new_user(tenant, roles=["compliance_officer"])
        return bearer((await api.new_key(tenant, created["id"]))["key"])

    theirs = await officer(other)
    for subject in ({"user_id": user["id"]}, {"email": user["email"]}):
        for kind in ("access", "erasure"):
            assert_problem(
                await api.client.post(
                    "/v1/sar", json={"subject": subject, "kind": kind}, headers=theirs
                ),
                404,
                "subject_not_found",
            )
    mine = await officer(a)
    started = await api.client.post(
        "/v1/sar", json={"subject": {"user_id": user["id"]}, "kind": "access"}, headers=mine
    )
    assert started.status_code == 202, started.text
    for path in (f"/v1/sar/{started.json()['id']}", f"/v1/sar/{started.json()['id']}/export"):
        assert_problem(await api.client.get(path, headers=theirs), 404, "sar_not_found")
    # A's person is still there.
    assert (
        await api.client.get(f"/v1/admin/users/{user['id']}", headers=a.admin)
    ).status_code == 200


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_console_is_per_tenant(api: Api, world: dict[str, Any], intruder: str) -> None:
    """A signed-in admin of B or C: A's console pages are 404, and B's console, naming A's
    resources, answers 404 and changes nothing."""
    from tests.console_client import saml_sign_in
    from tests.support.documents import add

    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    doc = await add(api, a, "Vault", "# Vault\n\nThe combination is 31-7-59.", acl={})
    theirs = await saml_sign_in(api, other, f"admin@{other.slug}.example")
    officer = await api.new_user(other, roles=["compliance_officer"])
    their_officer = await saml_sign_in(api, other, officer["email"])
    own = f"/console/{other.slug}"
    assert (await theirs.get(f"{own}/overview")).status_code == 200

    pages = {route for route in CONSOLE_ROUTES if route[1].startswith(_CONSOLE + "/")}
    ids = {
        "user_id": world["user"]["id"],
        "document_id": doc["document_id"],
        "request_id": str(uuid.uuid4()),
    }
    for method, template in sorted(pages):
        # A's console, with B's session: 404 for every page and form, as for an unknown tenant.
        path = template.replace("{tenant:str}", a.slug)
        for name, value in ids.items():
            path = path.replace(f"{{{name}:uuid}}", value)
        response = await (theirs.get(path) if method == "GET" else theirs.post(path))
        assert response.status_code == 404, (method, path, response.status_code)

    # B's own console, naming A's resources: the API behind it answers 404.
    user_form = {"roles": "tenant_admin", "clearance": "3", "active": "on"}
    for method, path, form in (
        ("GET", f"{own}/documents/{doc['document_id']}", None),
        ("POST", f"{own}/documents/{doc['document_id']}/acl", {"visibility": "tenant"}),
        ("POST", f"{own}/documents/{doc['document_id']}/delete", None),
        ("POST", f"{own}/users/{world['user']['id']}", user_form),
    ):
        response = await (theirs.get(path) if method == "GET" else theirs.post(path, form))
        assert response.status_code == 404, (method, path, response.text)
    sar = await api.client.post(
        "/v1/sar",
        json={"subject": {"user_id": world["user"]["id"]}, "kind": "access"},
        headers=bearer(
            (await api.new_key(a, (await api.new_user(a, ["compliance_officer"]))["id"]))["key"]
        ),
    )
    for path in (f"{own}/sar/{sar.json()['id']}", f"{own}/sar/{sar.json()['id']}/report.json"):
        assert (await their_officer.get(path)).status_code == 404
    started = await their_officer.post(
        f"{own}/sar", {"subject": world["user"]["email"], "kind": "access"}
    )
    assert started.status_code == 404  # no such person in B

    # A's document and person are untouched.
    read = await api.client.get(f"/v1/documents/{doc['document_id']}", headers=a.admin)
    assert read.status_code == 200 and read.json()["acl"]["visibility"] == "restricted"
    person = (
        await api.client.get(f"/v1/admin/users/{world['user']['id']}", headers=a.admin)
    ).json()
    assert person["roles"] == ["member"] and person["clearance"] == 0


@pytest.mark.parametrize("intruder", ["b", "c"])
async def test_the_raw_content_debug_switch_is_per_tenant(
    api: Api, world: dict[str, Any], intruder: str
) -> None:
    a: TenantHandle = world["a"]
    other: TenantHandle = world[intruder]
    switch = "/v1/admin/debug/raw-content"
    on = await api.client.put(switch, json={"minutes": 5, "reason": "INC-7"}, headers=a.admin)
    assert on.status_code == 200, on.text
    try:
        assert (await api.client.get(switch, headers=other.admin)).json()["enabled"] is False
        assert (await api.client.delete(switch, headers=other.admin)).status_code == 200
        assert (await api.client.get(switch, headers=a.admin)).json()["enabled"] is True
    finally:
        await api.client.delete(switch, headers=a.admin)
