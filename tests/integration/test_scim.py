"""SCIM 2.0 through the HTTP API, as an IdP (Entra, Okta) drives it, on both databases."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from keys.adapters.local import LocalKms
from tests.support.deployments import Deployment
from tests.support.http import assert_problem, bearer
from tests.support.scim import issue_token
from tests.support.tenants import Api, TenantHandle

SCIM_JSON = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def assert_scim_error(
    response: httpx.Response, status: int, scim_type: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON), response.headers
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert "Traceback" not in response.text
    return dict(body)


@dataclass
class Scim:
    api: Api
    tenant: TenantHandle
    token: str

    @property
    def base(self) -> str:
        return f"/scim/v2/{self.tenant.slug}"

    @property
    def headers(self) -> dict[str, str]:
        return {**bearer(self.token), "Content-Type": SCIM_JSON}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        content = json.dumps(body).encode() if body is not None else None
        return await self.api.client.request(
            method,
            self.base + path,
            content=content,
            params=params,
            headers={**self.headers, **(headers or {})},
        )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, params=params or None)

    async def create_user(self, user_name: str, **attributes: Any) -> dict[str, Any]:
        body = {"schemas": [USER], "userName": user_name, **attributes}
        response = await self.request("POST", "/Users", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def create_group(
        self, name: str, members: list[str] | None = None, **attributes: Any
    ) -> dict[str, Any]:
        body = {
            "schemas": [GROUP],
            "displayName": name,
            "members": [{"value": m} for m in members or []],
            **attributes,
        }
        response = await self.request("POST", "/Groups", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def patch(
        self, path: str, *operations: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.request(
            "PATCH", path, {"schemas": [PATCH], "Operations": list(operations)}, headers=headers
        )

    async def user_names(self, **params: Any) -> list[str]:
        response = await self.get("/Users", **params)
        assert response.status_code == 200, response.text
        return [r["userName"] for r in response.json().get("Resources", [])]


@pytest.fixture
async def scim(api: Api) -> Scim:
    tenant = await api.new_tenant()
    return Scim(api, tenant, await issue_token(api, tenant))


def work_email(address: str) -> list[dict[str, Any]]:
    return [{"value": address, "type": "work", "primary": True}]


# -- the token -------------------------------------------------------------------------------


async def test_scim_token_is_shown_once_and_replaces_the_previous_one(api: Api) -> None:
    tenant = await api.new_tenant()
    first = await api.client.post("/v1/admin/scim-token", headers=tenant.admin)
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) == {"id", "token", "hint", "created_at"}
    assert body["token"].startswith(f"bsc_{uuid.UUID(tenant.id).hex}_")
    assert body["token"].endswith(body["hint"])
    scim = Scim(api, tenant, body["token"])
    assert (await scim.get("/Users")).status_code == 200

    second = await issue_token(api, tenant)
    assert_scim_error(await scim.get("/Users"), 401)
    assert (await Scim(api, tenant, second).get("/Users")).status_code == 200

    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "scim_token.issued"}, headers=tenant.admin
        )
    ).json()["items"]
    assert [e["detail"] for e in events] == [{"revoked": 0}, {"revoked": 1}]
    assert body["token"] not in json.dumps(events)

    member = await api.new_user(tenant)
    key = bearer((await api.new_key(tenant, member["id"]))["key"])
    assert_problem(await api.client.post("/v1/admin/scim-token", headers=key), 403)


async def test_scim_authentication_failures_are_401_scim_errors(api: Api, scim: Scim) -> None:
    path = f"{scim.base}/Users"
    missing = await api.client.get(path)
    assert_scim_error(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for authorization in (
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        f"Bearer {scim.tenant.admin_key}",  # an API key is no SCIM token
        f"Bearer {scim.token[:-2]}xx",
        "Bearer bsc_" + "0" * 32 + "_" + "0" * 32 + "_" + "a" * 43,
    ):
        assert_scim_error(await api.client.get(path, headers={"Authorization": authorization}), 401)
    # The right token on an unknown tenant's URL.
    assert_scim_error(
        await api.client.get("/scim/v2/no-such-tenant/Users", headers=scim.headers), 401
    )
    # A SCIM token is no API key either.
    assert_problem(await api.client.get("/v1/me", headers=bearer(scim.token)), 401)


async def test_suspended_tenant_is_refused(api: Api, scim: Scim) -> None:
    suspended = await api.client.patch(
        f"/v1/tenants/{scim.tenant.id}", json={"status": "suspended"}, headers=api.operator
    )
    assert suspended.status_code == 200, suspended.text
    assert_scim_error(await scim.get("/Users"), 403)
    assert_scim_error(await scim.get("/ServiceProviderConfig"), 403)


async def test_deleted_tenant_is_refused(api: Api, scim: Scim) -> None:
    deleted = await api.client.delete(f"/v1/tenants/{scim.tenant.id}", headers=api.operator)
    assert deleted.status_code == 202, deleted.text
    assert_scim_error(await scim.get("/Users"), 403)
    assert_scim_error(
        await scim.request("POST", "/Users", {"schemas": [USER], "userName": "late"}), 403
    )


# -- discovery and errors ---------------------------------------------------------------------


async def test_discovery_endpoints(scim: Scim) -> None:
    config = await scim.get("/ServiceProviderConfig")
    assert config.status_code == 200 and config.headers["content-type"].startswith(SCIM_JSON)
    body = config.json()
    assert body["patch"] == {"supported": True} and body["etag"] == {"supported": True}
    assert body["filter"] == {"supported": True, "maxResults": 200}
    assert body["bulk"]["supported"] is False

    types = (await scim.get("/ResourceTypes")).json()
    assert types["schemas"] == [LIST]
    assert {t["id"]: t["endpoint"] for t in types["Resources"]} == {
        "User": "/Users",
        "Group": "/Groups",
    }
    user_type = (await scim.get("/ResourceTypes/User")).json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = (await scim.get("/Schemas")).json()["Resources"]
    assert {s["id"] for s in schemas} == {USER, GROUP, ENTERPRISE}
    group_schema = (await scim.get(f"/Schemas/{GROUP}")).json()
    members = next(a for a in group_schema["attributes"] if a["name"] == "members")
    assert {a["name"] for a in members["subAttributes"]} == {"value", "$ref", "type"}
    assert_scim_error(await scim.get("/Schemas/urn:nope"), 404)
    assert_scim_error(await scim.get("/ResourceTypes/Pet"), 404)


async def test_every_error_under_scim_is_a_scim_error(scim: Scim) -> None:
    assert_scim_error(await scim.get(f"/{uuid.uuid4()}"), 404)
    assert_scim_error(await scim.get("/Users/not-a-uuid"), 404)
    assert_scim_error(await scim.get(f"/Users/{uuid.uuid4()}"), 404)
    assert_scim_error(await scim.get(f"/Groups/{uuid.uuid4()}"), 404)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert_scim_error(await scim.request(method, "/ServiceProviderConfig"), 405)
    assert_scim_error(await scim.request("DELETE", "/Users"), 405)
    response = await scim.api.client.post(
        f"{scim.base}/Users", content=b'{"userName": ', headers=scim.headers
    )
    assert_scim_error(response, 400, "invalidSyntax")
    assert_scim_error(await scim.request("POST", "/Users", [1]), 400, "invalidSyntax")
    assert_scim_error(
        await scim.request("POST", "/Users", {"schemas": [USER], "userName": "x", "bogus": 1}),
        400,
        "invalidSyntax",
    )
    assert_scim_error(
        await scim.request("POST", "/Users", {"schemas": [USER], "displayName": "no userName"}),
        400,
        "invalidValue",
    )
    assert_scim_error(
        await scim.request("POST", "/Users", {"schemas": [USER], "userName": "a\u0000b"}),
        400,
        "invalidValue",
    )
    assert_scim_error(await scim.get("/Users", count="many"), 400, "invalidValue")
    assert_scim_error(await scim.get("/Users", sortOrder="up"), 400, "invalidValue")
    assert_scim_error(await scim.api.client.get("/scim/v2"), 404)


# -- users ------------------------------------------------------------------------------------


async def _events(api: Api, tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(
        "/v1/audit/events", params={"limit": 500, **params}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_user_lifecycle(api: Api, scim: Scim) -> None:
    created = await scim.request(
        "POST",
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "userName": "bjensen@example.com",
            "externalId": "ext-bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"},
            "emails": [
                {"value": "Barbara@Example.com", "type": "work", "primary": True},
                {"value": "babs@home.example", "type": "home"},
            ],
            "phoneNumbers": [{"value": "555-0100", "type": "work"}],
            "title": "Tour Guide",
            ENTERPRISE: {"employeeNumber": "701984", "department": "Tours"},
            "password": "never-stored",
        },
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert created.headers["content-type"].startswith(SCIM_JSON)
    assert created.headers["location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/{scim.tenant.slug}/Users/{user['id']}")
    assert created.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    assert user["active"] is True and "password" not in user
    assert "displayName" not in user  # none was sent (Bulwark shows "Barbara Jensen")
    assert user["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"}
    assert user[ENTERPRISE] == {"employeeNumber": "701984", "department": "Tours"}
    assert user["schemas"] == [USER, ENTERPRISE]

    # The rest of Bulwark sees the projections: email (primary, lowercased), display name.
    admin_view = (
        await api.client.get(f"/v1/admin/users/{user['id']}", headers=scim.tenant.admin)
    ).json()
    assert admin_view["email"] == "barbara@example.com"
    assert admin_view["display_name"] == "Barbara Jensen"
    assert admin_view["roles"] == ["member"]  # the tenant's default role

    read = await scim.get(f"/Users/{user['id']}")
    assert read.json() == user

    replaced = await scim.request(
        "PUT",
        f"/Users/{user['id']}",
        {
            "schemas": [USER],
            "userName": "bjensen@example.com",
            "displayName": "Babs",
            "emails": work_email("babs@example.com"),
        },
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["displayName"] == "Babs" and body["meta"]["version"] == 'W/"2"'
    assert "name" not in body and "externalId" not in body and ENTERPRISE not in body
    assert body["schemas"] == [USER]
    assert body["active"] is True  # PUT without active keeps it

    deleted = await scim.request("DELETE", f"/Users/{user['id']}")
    assert deleted.status_code == 204, deleted.text
    assert_scim_error(await scim.get(f"/Users/{user['id']}"), 404)
    assert_problem(
        await api.client.get(f"/v1/admin/users/{user['id']}", headers=scim.tenant.admin), 404
    )

    events = await _events(api, scim.tenant, resource_id=user["id"])
    assert [e["action"] for e in events] == [
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.deleted",
    ]
    scim_actor = await _events(api, scim.tenant, actor="scim")
    assert {e["id"] for e in events} <= {e["id"] for e in scim_actor}
    exported = (await api.client.get("/v1/audit/export", headers=scim.tenant.admin)).text
    for plaintext in ("bjensen", "Barbara", "Jensen", "Tours", "babs", "701984", "never-stored"):
        assert plaintext not in exported


async def test_users_created_outside_scim_are_visible(api: Api, scim: Scim) -> None:
    admin = (await scim.get(f"/Users/{scim.tenant.admin_id}")).json()
    assert admin["userName"] == f"admin@{scim.tenant.slug}.example"
    assert admin["emails"] == [{"value": f"admin@{scim.tenant.slug}.example", "primary": True}]
    assert admin["displayName"] == "Admin" and admin["active"] is True


async def test_user_without_email_gets_a_placeholder(api: Api, scim: Scim) -> None:
    first = await scim.create_user("no-mail-1")
    second = await scim.create_user("no-mail-2")
    assert "emails" not in first and "emails" not in second
    admin_view = (
        await api.client.get(f"/v1/admin/users/{first['id']}", headers=scim.tenant.admin)
    ).json()
    assert admin_view["email"].endswith("@scim.invalid")
    assert admin_view["display_name"] == "no-mail-1"


async def test_uniqueness_conflicts_are_409(scim: Scim) -> None:
    await scim.create_user("Alice@Example.com", externalId="a-1", emails=work_email("a@x.example"))
    for body in (
        {"userName": "alice@example.COM"},  # userName is not case-exact
        {"userName": "other", "emails": work_email("A@X.example")},
        {"userName": "other", "externalId": "a-1"},
    ):
        response = await scim.request("POST", "/Users", {"schemas": [USER], **body})
        error = assert_scim_error(response, 409, "uniqueness")
        assert "alice" not in error["detail"].lower()
    bob = await scim.create_user("bob")
    assert_scim_error(
        await scim.patch(
            f"/Users/{bob['id']}",
            {"op": "replace", "path": "userName", "value": "ALICE@example.com"},
        ),
        409,
        "uniqueness",
    )
    await scim.create_group("Finance")
    assert_scim_error(
        await scim.request("POST", "/Groups", {"schemas": [GROUP], "displayName": "Finance"}),
        409,
        "uniqueness",
    )


# -- filters, paging, sorting, attributes -------------------------------------------------------


@pytest.fixture
async def people(scim: Scim) -> dict[str, dict[str, Any]]:
    people = {}
    for name, external, email, active, given in (
        ("ann.lee@corp.example", "E-100", "ann@corp.example", True, "Ann"),
        ("bob.ray@corp.example", "E-200", "bob@corp.example", False, "Bob"),
        ("cy.ng@partner.example", None, "cy@partner.example", True, "Cy"),
        ("dee_x%@corp.example", "E-300", "dee@corp.example", True, None),
    ):
        attributes: dict[str, Any] = {"active": active, "emails": work_email(email)}
        if external:
            attributes["externalId"] = external
        if given:
            attributes["name"] = {"givenName": given, "familyName": "Zed"}
            attributes["displayName"] = f"{given} Zed"
        if given == "Ann":
            attributes["schemas"] = [USER, ENTERPRISE]
            attributes[ENTERPRISE] = {"department": "Sales"}
        people[name.split(".")[0].split("_")[0]] = await scim.create_user(name, **attributes)
    return people


@pytest.mark.parametrize(
    ("scim_filter", "expected"),
    [
        ('userName eq "ANN.LEE@corp.example"', {"ann"}),
        ('userName ne "ann.lee@corp.example" and userName ew "corp.example"', {"bob", "dee"}),
        ('userName co "x%"', {"dee"}),
        ('userName sw "c"', {"cy"}),
        ('userName ew "@PARTNER.example"', {"cy"}),
        ("externalId pr", {"ann", "bob", "dee"}),
        ('externalId eq "E-200"', {"bob"}),
        ('externalId eq "e-200"', set()),  # externalId is case-exact
        ('externalId ne "E-200" and userName sw "c"', {"cy"}),  # ne matches a missing value
        ('externalId sw "E-1" or externalId ew "300"', {"ann", "dee"}),
        ("active eq false", {"bob"}),
        ('active eq true and not (emails.value co "partner")', {"ann", "dee"}),
        ('emails.value eq "BOB@corp.example"', {"bob"}),
        ('emails[type eq "work" and value sw "cy"]', {"cy"}),
        ('emails[type eq "work"].value ew "@corp.example"', {"ann", "bob", "dee"}),
        ('displayName eq "ann zed"', {"ann"}),
        ('displayName co "Zed" and not (displayName sw "B")', {"ann", "cy"}),
        ('name.givenName pr and name.familyName eq "Zed"', {"ann", "bob", "cy"}),
        ('not (name.givenName pr) and userName sw "d"', {"dee"}),
        ("title pr", set()),
        (f'{ENTERPRISE}:department eq "sales"', {"ann"}),
        ('meta.created gt "2000-01-01T00:00:00Z" and userName sw "a"', {"ann"}),
    ],
)
async def test_filters(
    scim: Scim, people: dict[str, dict[str, Any]], scim_filter: str, expected: set[str]
) -> None:
    by_name = {p["userName"]: key for key, p in people.items()}
    names = await scim.user_names(filter=scim_filter, count=200)
    # (The tenant's bootstrap admin may match too; it is not one of these people.)
    assert {by_name[n] for n in names if n in by_name} == expected
    # The same through POST /Users/.search.
    searched = await scim.request("POST", "/Users/.search", {"filter": scim_filter})
    assert searched.status_code == 200, searched.text
    assert {r["userName"] for r in searched.json().get("Resources", [])} == set(names)


async def test_date_filters(scim: Scim, people: dict[str, dict[str, Any]]) -> None:
    bob = people["bob"]
    modified = bob["meta"]["lastModified"]
    patched = await scim.patch(
        f"/Users/{bob['id']}", {"op": "replace", "path": "title", "value": "Captain"}
    )
    later = patched.json()["meta"]["lastModified"]
    assert later > modified
    for op, expected in (("gt", {"bob"}), ("ge", {"bob"}), ("lt", set()), ("le", set())):
        names = await scim.user_names(filter=f'meta.lastModified {op} "{modified}"')
        bob_in = {"bob"} if bob["userName"] in names else set()
        assert bob_in == expected, (op, names)
    names = await scim.user_names(filter=f'meta.lastModified le "{later}" and userName sw "b"')
    assert names == [bob["userName"]]
    names = await scim.user_names(filter=f'meta.lastModified eq "{later}"')
    assert names == [bob["userName"]]


async def test_bad_filters_are_invalid_filter(scim: Scim) -> None:
    for bad in (
        "userName eq",
        'userName eq "x" and',
        'nosuchattribute eq "x"',
        "active gt true",
        'emails[type eq "work"',
        'userName xx "a"',
    ):
        assert_scim_error(await scim.get("/Users", filter=bad), 400, "invalidFilter")
    assert_scim_error(
        await scim.request("POST", "/Users/.search", {"filter": "userName eq"}),
        400,
        "invalidFilter",
    )


async def test_pagination(scim: Scim) -> None:
    for index in range(5):
        await scim.create_user(f"page-{index}")
    pages = []
    for start in (1, 3, 5, 7):
        response = await scim.get("/Users", filter='userName sw "page-"', startIndex=start, count=2)
        body = response.json()
        assert body["schemas"] == [LIST]
        assert body["totalResults"] == 5 and body["startIndex"] == start
        assert body["itemsPerPage"] == len(body.get("Resources", []))
        pages.append([r["userName"] for r in body.get("Resources", [])])
    assert pages == [["page-0", "page-1"], ["page-2", "page-3"], ["page-4"], []]
    zero = (await scim.get("/Users", filter='userName sw "page-"', count=0)).json()
    assert zero["totalResults"] == 5 and not zero.get("Resources")
    first = (await scim.get("/Users", filter='userName sw "page-"', startIndex=0, count=1)).json()
    assert first["startIndex"] == 1 and first["Resources"][0]["userName"] == "page-0"
    capped = (await scim.get("/Users", count=100000)).json()
    assert capped["itemsPerPage"] == capped["totalResults"] == 6  # 5 + the bootstrap admin
    # Paging also applies when the filter is evaluated in Python (emails).
    python_side = (
        await scim.get("/Users", filter='emails pr or userName sw "page-"', startIndex=2, count=2)
    ).json()
    assert python_side["totalResults"] == 6
    assert [r["userName"] for r in python_side["Resources"]] == ["page-0", "page-1"]


async def test_sorting(scim: Scim, people: dict[str, dict[str, Any]]) -> None:
    key = {p["userName"]: k for k, p in people.items()}

    async def order(**params: Any) -> list[str]:
        names = await scim.user_names(filter='userName ew "example"', **params)
        return [key[n] for n in names if n in key]

    assert await order(sortBy="userName") == ["ann", "bob", "cy", "dee"]
    assert await order(sortBy="userName", sortOrder="descending") == ["dee", "cy", "bob", "ann"]
    # Missing values last when ascending, first when descending.
    assert await order(sortBy="externalId") == ["ann", "bob", "dee", "cy"]
    assert await order(sortBy="externalId", sortOrder="descending") == ["cy", "dee", "bob", "ann"]
    assert (await order(sortBy="name.givenName", sortOrder="descending"))[:1] == ["dee"]
    # Sorted in Python: by the primary email.
    assert await order(sortBy="emails") == ["ann", "bob", "cy", "dee"]
    assert await order(sortBy="emails.value", sortOrder="descending") == [
        "dee",
        "cy",
        "bob",
        "ann",
    ]
    assert_scim_error(await scim.get("/Users", sortBy="nosuch"), 400, "invalidPath")


async def test_attributes_and_excluded_attributes(
    scim: Scim, people: dict[str, dict[str, Any]]
) -> None:
    ann = people["ann"]
    only = (await scim.get(f"/Users/{ann['id']}", attributes="userName,name.givenName")).json()
    assert set(only) == {"schemas", "id", "userName", "name"}
    assert only["name"] == {"givenName": "Ann"}
    without = (await scim.get(f"/Users/{ann['id']}", excludedAttributes="emails,name")).json()
    assert "emails" not in without and "name" not in without and without["userName"]
    listed = (
        await scim.get("/Users", filter=f'id eq "{ann["id"]}"', attributes="externalId")
    ).json()
    assert listed["Resources"] == [{"schemas": [USER], "id": ann["id"], "externalId": "E-100"}]
    searched = await scim.request(
        "POST",
        "/Users/.search",
        {"filter": f'id eq "{ann["id"]}"', "excludedAttributes": ["emails", "meta"]},
    )
    resource = searched.json()["Resources"][0]
    assert "emails" not in resource and "meta" not in resource and resource["active"] is True
    patched = await scim.patch(
        f"/Users/{ann['id']}",
        {"op": "replace", "path": "title", "value": "Lead"},
        headers={},
    )
    assert patched.json()["title"] == "Lead"
    group = await scim.create_group("Readers", [ann["id"]])
    slim = (await scim.get(f"/Groups/{group['id']}", excludedAttributes="members")).json()
    assert "members" not in slim and slim["displayName"] == "Readers"
    assert_scim_error(
        await scim.get(f"/Users/{ann['id']}", attributes="userName", excludedAttributes="emails"),
        400,
        "invalidValue",
    )


async def test_etags(scim: Scim) -> None:
    user = await scim.create_user("etag-user")
    path = f"/Users/{user['id']}"
    read = await scim.get(path)
    assert read.headers["etag"] == 'W/"1"'
    not_modified = await scim.request("GET", path, headers={"If-None-Match": 'W/"1"'})
    assert not_modified.status_code == 304
    replace = {"op": "replace", "path": "displayName", "value": "E"}
    assert_scim_error(await scim.patch(path, replace, headers={"If-Match": 'W/"7"'}), 412)
    ok = await scim.patch(path, replace, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    body = {"schemas": [USER], "userName": "etag-user"}
    assert_scim_error(await scim.request("PUT", path, body, headers={"If-Match": 'W/"1"'}), 412)
    assert (await scim.request("PUT", path, body, headers={"If-Match": '"2"'})).status_code == 200
    assert_scim_error(await scim.request("DELETE", path, headers={"If-Match": 'W/"2"'}), 412)
    assert (await scim.request("DELETE", path, headers={"If-Match": "*"})).status_code == 204
    group = await scim.create_group("etag-group")
    group_path = f"/Groups/{group['id']}"
    assert_scim_error(
        await scim.patch(
            group_path,
            {"op": "replace", "path": "displayName", "value": "x"},
            headers={"If-Match": 'W/"9"'},
        ),
        412,
    )
    assert (await scim.get(group_path)).json()["displayName"] == "etag-group"


# -- groups and IdP quirks ----------------------------------------------------------------------


async def test_group_lifecycle_and_membership_versions(api: Api, scim: Scim) -> None:
    alice = await scim.create_user("alice")
    bob = await scim.create_user("bob")
    group = await scim.create_group("Engineering", [alice["id"]], externalId="g-eng")
    assert group["members"] == [
        {
            "value": alice["id"],
            "$ref": alice["meta"]["location"],
            "type": "User",
        }
    ]
    alice_now = (await scim.get(f"/Users/{alice['id']}")).json()
    assert alice_now["groups"] == [
        {
            "value": group["id"],
            "$ref": group["meta"]["location"],
            "display": "Engineering",
            "type": "direct",
        }
    ]
    assert alice_now["meta"]["version"] != alice["meta"]["version"]

    added = await scim.patch(
        f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": bob["id"]}]}
    )
    assert {m["value"] for m in added.json()["members"]} == {alice["id"], bob["id"]}
    assert added.json()["meta"]["version"] == 'W/"2"'
    names = await scim.user_names(filter=f'groups.value eq "{group["id"]}"')
    assert sorted(names) == ["alice", "bob"]
    groups = (await scim.get("/Groups", filter=f'members.value eq "{bob["id"]}"')).json()
    assert [g["displayName"] for g in groups["Resources"]] == ["Engineering"]
    by_name = (await scim.get("/Groups", filter='displayName eq "engineering"')).json()
    assert by_name["totalResults"] == 1
    by_external = (await scim.get("/Groups", filter='externalId eq "g-eng"')).json()
    assert by_external["totalResults"] == 1
    assert (await scim.get("/Groups", filter="members pr")).json()["totalResults"] == 1

    # An unknown member (or a user of another tenant) is refused, and nothing changes.
    assert_scim_error(
        await scim.patch(
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]},
        ),
        400,
        "invalidValue",
    )
    assert len((await scim.get(f"/Groups/{group['id']}")).json()["members"]) == 2

    deleted = await scim.request("DELETE", f"/Groups/{group['id']}")
    assert deleted.status_code == 204
    assert "groups" not in (await scim.get(f"/Users/{alice['id']}")).json()
    actions = [e["action"] for e in await _events(api, scim.tenant, resource_id=group["id"])]
    assert actions == [
        "group.created",
        "group.member_added",
        "group.member_added",
        "group.deleted",
    ]


async def test_entra_quirks(api: Api, scim: Scim) -> None:
    user = await scim.create_user(
        "entra@corp.example", emails=work_email("entra@corp.example"), active="True"
    )
    assert user["active"] is True
    key = bearer((await api.new_key(scim.tenant, user["id"]))["key"])
    assert (await api.client.get("/v1/me", headers=key)).status_code == 200
    path = f"/Users/{user['id']}"

    # Capitalised op names and booleans as strings; deactivation revokes the key at once.
    off = await scim.patch(path, {"op": "Replace", "path": "active", "value": "False"})
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert_problem(await api.client.get("/v1/me", headers=key), 401)
    on = await scim.patch(path, {"op": "Replace", "path": "active", "value": "True"})
    assert on.json()["active"] is True
    actions = [e["action"] for e in await _events(api, scim.tenant, resource_id=user["id"])]
    assert actions[-2:] == ["user.deactivated", "user.updated"]

    # emails[type eq "work"].value: replaces the work email (and the email Bulwark uses).
    changed = await scim.patch(
        path,
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@corp.example"},
        {"op": "Add", "path": "name.givenName", "value": "Ent"},
        {
            "op": "Add",
            "path": f"{ENTERPRISE}:manager",
            "value": scim.tenant.admin_id,
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["emails"] == work_email("new@corp.example")
    assert body["name"] == {"givenName": "Ent"}
    assert body[ENTERPRISE]["manager"]["value"] == scim.tenant.admin_id
    assert body[ENTERPRISE]["manager"]["$ref"].endswith(f"/Users/{scim.tenant.admin_id}")
    admin_view = await api.client.get(f"/v1/admin/users/{user['id']}", headers=scim.tenant.admin)
    assert admin_view.json()["email"] == "new@corp.example"

    # ... and creates it on a user that has no work email yet.
    bare = await scim.create_user("bare@corp.example")
    created = await scim.patch(
        f"/Users/{bare['id']}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "bare@corp.example"},
    )
    assert created.json()["emails"] == [{"type": "work", "value": "bare@corp.example"}]

    # Member removal by filter path, and by value (Entra sends both forms).
    other = await scim.create_user("other@corp.example")
    group = await scim.create_group("Entra Group", [user["id"], other["id"], bare["id"]])
    by_filter = await scim.patch(
        f"/Groups/{group['id']}", {"op": "Remove", "path": f'members[value eq "{user["id"]}"]'}
    )
    assert {m["value"] for m in by_filter.json()["members"]} == {other["id"], bare["id"]}
    by_value = await scim.patch(
        f"/Groups/{group['id']}",
        {"op": "Remove", "path": "members", "value": [{"value": other["id"]}]},
    )
    assert [m["value"] for m in by_value.json()["members"]] == [bare["id"]]
    # Entra's rename of a group.
    renamed = await scim.patch(
        f"/Groups/{group['id']}", {"op": "Replace", "path": "displayName", "value": "Renamed"}
    )
    assert renamed.json()["displayName"] == "Renamed"


async def test_okta_quirks(api: Api, scim: Scim) -> None:
    one = await scim.create_user("one@okta.example")
    two = await scim.create_user("two@okta.example")
    three = await scim.create_user("three@okta.example")
    group = await scim.create_group("Okta Group", [one["id"], two["id"]])
    # Okta PUTs whole groups (members with a display), replacing the member list.
    replaced = await scim.request(
        "PUT",
        f"/Groups/{group['id']}",
        {
            "schemas": [GROUP],
            "id": group["id"],
            "displayName": "Okta Group",
            "members": [
                {"value": two["id"], "display": "two@okta.example"},
                {"value": three["id"], "display": "three@okta.example"},
            ],
        },
    )
    assert replaced.status_code == 200, replaced.text
    assert {m["value"] for m in replaced.json()["members"]} == {two["id"], three["id"]}
    actions = [e["action"] for e in await _events(api, scim.tenant, resource_id=group["id"])]
    assert actions[-2:] == ["group.member_removed", "group.member_added"]
    # ... and PATCHes without a path: the value is an object of attributes (id repeated).
    deactivated = await scim.patch(
        f"/Users/{one['id']}",
        {"op": "replace", "value": {"id": one["id"], "active": False, "displayName": "One"}},
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False and deactivated.json()["displayName"] == "One"
    # Replace members with a PATCH.
    patched = await scim.patch(
        f"/Groups/{group['id']}",
        {"op": "replace", "path": "members", "value": [{"value": one["id"], "display": "x"}]},
    )
    assert [m["value"] for m in patched.json()["members"]] == [one["id"]]


async def test_removing_active_deactivates(api: Api, scim: Scim) -> None:
    user = await scim.create_user("removable")
    removed = await scim.patch(f"/Users/{user['id']}", {"op": "remove", "path": "active"})
    assert removed.status_code == 200, removed.text
    assert "active" not in removed.json()
    admin_view = (
        await api.client.get(f"/v1/admin/users/{user['id']}", headers=scim.tenant.admin)
    ).json()
    assert admin_view["active"] is False
    again = await scim.patch(f"/Users/{user['id']}", {"op": "add", "path": "active", "value": True})
    assert again.json()["active"] is True


async def test_patch_errors(scim: Scim) -> None:
    user = await scim.create_user("patchy")
    path = f"/Users/{user['id']}"
    assert_scim_error(
        await scim.patch(path, {"op": "replace", "path": "id", "value": "x"}), 400, "mutability"
    )
    assert_scim_error(
        await scim.patch(path, {"op": "remove", "path": "userName"}), 400, "mutability"
    )
    assert_scim_error(
        await scim.patch(path, {"op": "replace", "path": "nosuch", "value": "x"}),
        400,
        "invalidPath",
    )
    assert_scim_error(await scim.patch(path, {"op": "remove"}), 400, "noTarget")
    assert_scim_error(await scim.patch(path, {"op": "move", "path": "title"}), 400, "invalidValue")
    assert_scim_error(
        await scim.patch(path, {"op": "replace", "path": "userName", "value": "x" * 400}),
        400,
        "invalidValue",
    )
    assert (await scim.get(path)).json()["meta"]["version"] == 'W/"1"'


async def test_group_membership_grants_mapped_role_on_the_next_request(
    api: Api, scim: Scim
) -> None:
    mappings = {
        "default_role": "member",
        "mappings": [{"idp_group": "Bulwark Admins", "role": "tenant_admin"}],
    }
    saved = await api.client.put(
        "/v1/admin/role-mappings", json=mappings, headers=scim.tenant.admin
    )
    assert saved.status_code == 200, saved.text
    user = await scim.create_user("future-admin@corp.example")
    key = bearer((await api.new_key(scim.tenant, user["id"]))["key"])
    group = await scim.create_group("Bulwark Admins")
    assert_problem(await api.client.get("/v1/admin/users", headers=key), 403, "role_required")

    added = await scim.patch(
        f"/Groups/{group['id']}",
        {"op": "Add", "path": "members", "value": [{"value": user["id"]}]},
    )
    assert added.status_code == 200, added.text
    assert (await api.client.get("/v1/admin/users", headers=key)).status_code == 200

    removed = await scim.patch(
        f"/Groups/{group['id']}", {"op": "Remove", "path": f'members[value eq "{user["id"]}"]'}
    )
    assert removed.status_code == 200, removed.text
    assert_problem(await api.client.get("/v1/admin/users", headers=key), 403, "role_required")


async def test_deleting_a_user_removes_keys_and_memberships(api: Api, scim: Scim) -> None:
    user = await scim.create_user("leaver@corp.example")
    key = bearer((await api.new_key(scim.tenant, user["id"]))["key"])
    group = await scim.create_group("Leavers", [user["id"]])
    assert (await api.client.get("/v1/me", headers=key)).status_code == 200
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status_code == 204
    assert_problem(await api.client.get("/v1/me", headers=key), 401)
    left = (await scim.get(f"/Groups/{group['id']}")).json()
    assert "members" not in left and left["meta"]["version"] == 'W/"2"'
    keys = (await api.client.get("/v1/admin/api-keys", headers=scim.tenant.admin)).json()
    assert user["id"] not in {k["user_id"] for k in keys["items"]}
    deactivated = await _events(api, scim.tenant, action="user.deactivated")
    assert deactivated[-1]["detail"] == {"api_keys_revoked": 1, "sessions_revoked": 0}


async def test_root_search_covers_users_and_groups(scim: Scim) -> None:
    user = await scim.create_user("findme")
    group = await scim.create_group("findme-group")
    everything = await scim.request("POST", "/.search", {"count": 50})
    assert everything.status_code == 200, everything.text
    found = {r["id"] for r in everything.json()["Resources"]}
    assert {user["id"], group["id"], scim.tenant.admin_id} <= found
    names = await scim.request(
        "POST",
        "/.search",
        {"filter": 'userName sw "find" or displayName sw "find"', "sortBy": "meta.created"},
    )
    resources = names.json()["Resources"]
    assert [r["id"] for r in resources] == [user["id"], group["id"]]
    paged = await scim.request(
        "POST",
        "/.search",
        {"filter": 'userName sw "find" or displayName sw "find"', "startIndex": 2},
    )
    assert paged.json()["totalResults"] == 2
    assert [r["id"] for r in paged.json()["Resources"]] == [group["id"]]


async def test_too_broad_python_filters_are_too_many(
    scim: Scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth.scim import services

    for index in range(3):
        await scim.create_user(f"many-{index}")
    monkeypatch.setattr(services, "MAX_SCAN", 2)
    assert_scim_error(await scim.get("/Users", filter="emails pr"), 400, "tooMany")
    assert (await scim.get("/Users", filter='userName sw "many-"')).status_code == 200


async def test_scim_is_gated_on_the_tenant_key(scim: Scim, deployment: Deployment) -> None:
    key_id = (await scim.api.client.get("/v1/admin/kms", headers=scim.tenant.admin)).json()[
        "key_id"
    ]
    kms = LocalKms(Path(deployment.settings.regions[scim.tenant.region].kms.key_file or ""))
    kms.set_state(key_id, "disabled")  # the customer revokes access
    try:
        await asyncio.sleep(1.1)  # the DEK cache TTL of the test deployment
        assert_scim_error(await scim.get("/Users"), 503)
        assert_scim_error(
            await scim.request("POST", "/Users", {"schemas": [USER], "userName": "x"}), 503
        )
    finally:
        kms.set_state(key_id, "enabled")
    assert await scim.user_names() == [f"admin@{scim.tenant.slug}.example"]


async def test_scim_protocol_routes_stay_out_of_the_openapi_document(api: Api) -> None:
    paths = (await api.client.get("/schema/openapi.json")).json()["paths"]
    assert "/v1/admin/scim-token" in paths
    assert not [path for path in paths if path.startswith("/scim")]
