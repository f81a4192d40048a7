"""Role mappings, Bulwark sessions and deactivation: what SSO and SCIM build on."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.runtime import Runtime
from audit.services import AuditLog
from auth.context import system_context
from auth.repositories import UserRepository
from auth.sso import SessionService, deactivate_user
from kernel.tenancy import TenantRoute
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle


async def new_session(
    runtime: Runtime, tenant: TenantHandle, user_id: str, ttl: timedelta = timedelta(hours=1)
) -> str:
    ctx = system_context(TenantRoute(uuid.UUID(tenant.id), tenant.slug, tenant.region, "active"))
    async with runtime.registry.tenant_transaction(ctx) as session:
        user = await UserRepository(session, ctx).get(uuid.UUID(user_id))
        assert user is not None
        issued = await SessionService(session, ctx, pepper=runtime.pepper, ttl=ttl).issue(
            user, "oidc"
        )
    return issued.token


async def test_role_mappings_apply_to_the_next_request(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant, roles=["member"])
    key = bearer((await api.new_key(tenant, user["id"]))["key"])
    group = await api.new_group(tenant, "okta-bulwark-admins")
    await api.client.put(
        f"/v1/admin/groups/{group['id']}/members/{user['id']}", headers=tenant.admin
    )
    assert_problem(await api.client.get("/v1/admin/users", headers=key), 403, "role_required")

    body = {
        "default_role": "member",
        "mappings": [{"idp_group": "okta-bulwark-admins", "role": "tenant_admin"}],
    }
    saved = await api.client.put("/v1/admin/role-mappings", json=body, headers=tenant.admin)
    assert saved.status_code == 200, saved.text
    assert saved.json() == body
    assert (await api.client.get("/v1/admin/users", headers=key)).status_code == 200
    me = (await api.client.get("/v1/me", headers=key)).json()
    assert me["roles"] == ["member", "tenant_admin"]

    # Membership removed: the mapped role is gone at once.
    await api.client.delete(
        f"/v1/admin/groups/{group['id']}/members/{user['id']}", headers=tenant.admin
    )
    assert_problem(await api.client.get("/v1/admin/users", headers=key), 403, "role_required")
    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "role_mappings.updated"}, headers=tenant.admin
        )
    ).json()["items"]
    assert events[0]["detail"] == {"default_role": "member", "mappings": 1}


async def test_role_mapping_input_is_validated(api: Api) -> None:
    tenant = await api.new_tenant()
    bad = {"default_role": "root", "mappings": []}
    assert_problem(
        await api.client.put("/v1/admin/role-mappings", json=bad, headers=tenant.admin), 400
    )
    member = await api.new_user(tenant)
    key = bearer((await api.new_key(tenant, member["id"]))["key"])
    assert_problem(await api.client.get("/v1/admin/role-mappings", headers=key), 403)


async def test_sessions_authenticate_until_logout(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    token = await new_session(runtime, tenant, user["id"])
    me = await api.client.get("/v1/me", headers=bearer(token))
    assert me.json()["auth_method"] == "session"
    # The console cookie works for reads, never for writes.
    cookie = {"Cookie": f"bulwark_session={token}"}
    assert (await api.client.get("/v1/me", headers=cookie)).status_code == 200
    assert_problem(
        await api.client.post("/v1/admin/groups", json={"name": "x"}, headers=cookie), 401
    )

    out = await api.client.post("/auth/logout", headers=cookie)
    assert out.status_code == 204, out.text
    assert (
        'bulwark_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    assert_problem(await api.client.get("/v1/me", headers=bearer(token)), 401)
    assert_problem(
        await api.client.post("/auth/logout", headers=tenant.admin), 422, "not_a_session"
    )


async def test_expired_sessions_are_refused(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    token = await new_session(runtime, tenant, tenant.admin_id, ttl=timedelta(seconds=-1))
    assert_problem(await api.client.get("/v1/me", headers=bearer(token)), 401)


async def test_deactivation_revokes_sessions_and_keys_at_once(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    key = (await api.new_key(tenant, user["id"]))["key"]
    token = await new_session(runtime, tenant, user["id"])
    ctx = system_context(TenantRoute(uuid.UUID(tenant.id), tenant.slug, tenant.region, "active"))
    async with runtime.registry.tenant_transaction(ctx) as session:
        row = await UserRepository(session, ctx).get(uuid.UUID(user["id"]))
        assert row is not None
        await deactivate_user(session, ctx, row, AuditLog(session, ctx))
    for credential in (key, token):
        assert_problem(await api.client.get("/v1/me", headers=bearer(credential)), 401)
    keys = (await api.client.get("/v1/admin/api-keys", headers=tenant.admin)).json()["items"]
    assert all(k["revoked_at"] for k in keys if k["user_id"] == user["id"])


async def test_admin_deactivation_and_role_changes(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    key = bearer((await api.new_key(tenant, user["id"]))["key"])
    token = await new_session(runtime, tenant, user["id"])
    promoted = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"roles": ["tenant_admin"]}, headers=tenant.admin
    )
    assert promoted.json()["roles"] == ["tenant_admin"]
    assert (await api.client.get("/v1/admin/users", headers=key)).status_code == 200

    off = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"active": False}, headers=tenant.admin
    )
    assert off.json()["active"] is False
    assert_problem(await api.client.get("/v1/me", headers=key), 401)
    assert_problem(await api.client.get("/v1/me", headers=bearer(token)), 401)
    on = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"active": True}, headers=tenant.admin
    )
    assert on.json()["active"] is True
    assert_problem(await api.client.get("/v1/me", headers=key), 401)  # revoked keys stay revoked
    events = (
        await api.client.get(
            "/v1/audit/events", params={"resource_id": user["id"]}, headers=tenant.admin
        )
    ).json()["items"]
    assert [e["action"] for e in events][-3:] == [
        "user.updated",
        "user.deactivated",
        "user.updated",
    ]
    assert_problem(
        await api.client.patch(
            f"/v1/admin/users/{uuid.uuid4()}", json={"active": False}, headers=tenant.admin
        ),
        404,
    )


async def test_clearance_and_attributes_reach_the_request_context(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    assert (user["clearance"], user["attributes"]) == (0, {})
    updated = await api.client.patch(
        f"/v1/admin/users/{user['id']}",
        headers=tenant.admin,
        json={"clearance": 2, "attributes": {"department": ["finance", "finance", "legal"]}},
    )
    assert updated.json()["clearance"] == 2
    assert updated.json()["attributes"] == {"department": ["finance", "legal"]}
    # Bounds, key and value patterns are the OpenAPI document's: a malformed body (400).
    for bad in (
        {"clearance": 4},
        {"clearance": -1},
        {"attributes": {"Bad Key": ["x"]}},
        {"attributes": {"team": ["has space"]}},
    ):
        problem = assert_problem(
            await api.client.patch(f"/v1/admin/users/{user['id']}", json=bad, headers=tenant.admin),
            400,
            "invalid_input",
        )
        assert f"$.{next(iter(bad))}" in problem["errors"][0]["message"]
    read = await api.client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
    assert read.json()["attributes"] == {"department": ["finance", "legal"]}
