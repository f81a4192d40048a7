from __future__ import annotations

import uuid

from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api


async def test_users_are_created_listed_and_read(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(
        tenant, roles=["compliance_officer", "member"], email="Carol@Example.COM"
    )
    assert user["email"] == "carol@example.com"
    assert user["roles"] == ["compliance_officer", "member"]

    read = await api.client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
    assert read.json() == user
    listed = await api.client.get("/v1/admin/users", headers=tenant.admin)
    assert {u["email"] for u in listed.json()["items"]} == {
        f"admin@{tenant.slug}.example",
        "carol@example.com",
    }


async def test_duplicate_email_is_409_case_insensitively(api: Api) -> None:
    tenant = await api.new_tenant()
    await api.new_user(tenant, email="dup@example.com")
    response = await api.client.post(
        "/v1/admin/users",
        json={"email": "DUP@example.com", "display_name": "Again"},
        headers=tenant.admin,
    )
    assert_problem(response, 409, "email_taken")


async def test_the_same_email_may_exist_in_two_tenants(api: Api) -> None:
    a, b = await api.new_tenant("eu"), await api.new_tenant("eu")
    await api.new_user(a, email="shared@example.com")
    await api.new_user(b, email="shared@example.com")


async def test_group_membership_flows_into_the_callers_identity(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    group = await api.new_group(tenant, "engineering")
    key = await api.new_key(tenant, user["id"])

    path = f"/v1/admin/groups/{group['id']}/members/{user['id']}"
    assert (await api.client.put(path, headers=tenant.admin)).status_code == 204
    assert (await api.client.put(path, headers=tenant.admin)).status_code == 204  # idempotent

    read = await api.client.get(f"/v1/admin/groups/{group['id']}", headers=tenant.admin)
    assert read.json()["member_ids"] == [user["id"]]
    me = await api.client.get("/v1/me", headers=bearer(key["key"]))
    assert me.json()["group_ids"] == [group["id"]]

    assert (await api.client.delete(path, headers=tenant.admin)).status_code == 204
    assert_problem(await api.client.delete(path, headers=tenant.admin), 404, "membership_not_found")
    me = await api.client.get("/v1/me", headers=bearer(key["key"]))
    assert me.json()["group_ids"] == []


async def test_duplicate_group_name_is_409(api: Api) -> None:
    tenant = await api.new_tenant()
    await api.new_group(tenant, "sales")
    response = await api.client.post(
        "/v1/admin/groups", json={"name": "sales"}, headers=tenant.admin
    )
    assert_problem(response, 409, "group_name_taken")


async def test_membership_needs_an_existing_user_and_group(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    group = await api.new_group(tenant)
    missing = uuid.uuid4()
    assert_problem(
        await api.client.put(
            f"/v1/admin/groups/{missing}/members/{user['id']}", headers=tenant.admin
        ),
        404,
        "group_not_found",
    )
    assert_problem(
        await api.client.put(
            f"/v1/admin/groups/{group['id']}/members/{missing}", headers=tenant.admin
        ),
        404,
        "user_not_found",
    )


async def test_api_key_acts_as_its_user_and_is_shown_once(api: Api) -> None:
    tenant = await api.new_tenant("us")
    user = await api.new_user(tenant, roles=["member"])
    created = await api.new_key(tenant, user["id"])
    assert created["key"].startswith("bwk_")
    assert created["hint"] == created["key"][-4:]

    me = await api.client.get("/v1/me", headers=bearer(created["key"]))
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["id"] == user["id"]
    assert body["roles"] == ["member"]
    assert body["tenant"] == {"id": tenant.id, "slug": tenant.slug, "region": "us"}

    listed = await api.client.get("/v1/admin/api-keys", headers=tenant.admin)
    assert created["id"] in {k["id"] for k in listed.json()["items"]}
    assert created["key"] not in listed.text
    assert created["key"].split("_", 3)[3] not in listed.text  # the secret part


async def test_members_cannot_administer(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant, roles=["member"])
    key = bearer((await api.new_key(tenant, user["id"]))["key"])
    assert_problem(await api.client.get("/v1/admin/users", headers=key), 403, "role_required")
    response = await api.client.post(
        "/v1/admin/api-keys", json={"user_id": user["id"], "name": "x"}, headers=key
    )
    assert_problem(response, 403, "role_required")


async def test_revoked_key_is_refused_at_once(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    created = await api.new_key(tenant, user["id"])
    assert (await api.client.get("/v1/me", headers=bearer(created["key"]))).status_code == 200

    revoked = await api.client.delete(f"/v1/admin/api-keys/{created['id']}", headers=tenant.admin)
    assert revoked.status_code == 204
    assert_problem(
        await api.client.get("/v1/me", headers=bearer(created["key"])), 401, "invalid_credentials"
    )
    assert_problem(
        await api.client.delete(f"/v1/admin/api-keys/{created['id']}", headers=tenant.admin),
        404,
        "api_key_not_found",
    )
    listed = await api.client.get("/v1/admin/api-keys", headers=tenant.admin)
    row = next(k for k in listed.json()["items"] if k["id"] == created["id"])
    assert row["revoked_at"] is not None


async def test_tampered_or_foreign_keys_are_refused(api: Api) -> None:
    tenant = await api.new_tenant()
    key = tenant.admin_key
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_problem(await api.client.get("/v1/me", headers=bearer(tampered)), 401)
    other_tenant = key.replace(tenant.id.replace("-", ""), uuid.uuid4().hex)
    assert_problem(await api.client.get("/v1/me", headers=bearer(other_tenant)), 401)
    assert_problem(await api.client.get("/v1/me", headers=bearer("bwk_garbage")), 401)
    assert_problem(await api.client.get("/v1/me", headers={"Authorization": "Basic abc"}), 401)


async def test_api_key_for_unknown_user_is_404(api: Api) -> None:
    tenant = await api.new_tenant()
    response = await api.client.post(
        "/v1/admin/api-keys", json={"user_id": str(uuid.uuid4()), "name": "x"}, headers=tenant.admin
    )
    assert_problem(response, 404, "user_not_found")


async def test_pagination_walks_every_user_once(api: Api) -> None:
    tenant = await api.new_tenant()
    for _ in range(5):
        await api.new_user(tenant)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await api.client.get(
            f"/v1/admin/users?limit=2&offset={offset}", headers=tenant.admin
        )
        seen += [u["id"] for u in page.json()["items"]]
        offset = page.json()["next_offset"]
    assert len(seen) == len(set(seen)) == 6
