from __future__ import annotations

import uuid

from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api


async def test_operator_creates_lists_and_reads_tenants(api: Api) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    created = await api.client.post(
        "/v1/tenants", json={"slug": slug, "name": "Initech", "region": "us"}, headers=api.operator
    )
    assert created.status_code == 201
    tenant = created.json()
    assert (tenant["slug"], tenant["region"], tenant["status"]) == (slug, "us", "active")

    read = await api.client.get(f"/v1/tenants/{tenant['id']}", headers=api.operator)
    assert read.json() == tenant

    listed, offset = [], 0
    while offset is not None:
        page = await api.client.get(f"/v1/tenants?limit=500&offset={offset}", headers=api.operator)
        listed += [t["id"] for t in page.json()["items"]]
        offset = page.json()["next_offset"]
    assert tenant["id"] in listed


async def test_unknown_region_is_422_problem(api: Api) -> None:
    response = await api.client.post(
        "/v1/tenants",
        json={"slug": "martians", "name": "Mars", "region": "mars"},
        headers=api.operator,
    )
    body = assert_problem(response, 422, "unknown_region")
    assert body["known_regions"] == ["eu", "us"]


async def test_duplicate_slug_is_409_and_keeps_the_first(api: Api) -> None:
    first = await api.new_tenant("eu")
    response = await api.client.post(
        "/v1/tenants",
        json={"slug": first.slug, "name": "Impostor", "region": "us"},
        headers=api.operator,
    )
    assert_problem(response, 409, "tenant_slug_taken")
    kept = await api.client.get(f"/v1/tenants/{first.id}", headers=api.operator)
    assert kept.json()["region"] == "eu"


async def test_unknown_tenant_is_404(api: Api) -> None:
    response = await api.client.get(f"/v1/tenants/{uuid.uuid4()}", headers=api.operator)
    assert_problem(response, 404, "tenant_not_found")


async def test_suspended_tenant_is_refused_and_reactivation_restores_access(api: Api) -> None:
    tenant = await api.new_tenant("eu")
    assert (await api.client.get("/v1/me", headers=tenant.admin)).status_code == 200

    suspended = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"status": "suspended"}, headers=api.operator
    )
    assert suspended.json()["status"] == "suspended"
    assert_problem(await api.client.get("/v1/me", headers=tenant.admin), 403, "tenant_suspended")
    assert_problem(
        await api.client.get("/v1/admin/users", headers=tenant.admin), 403, "tenant_suspended"
    )

    await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"status": "active"}, headers=api.operator
    )
    assert (await api.client.get("/v1/me", headers=tenant.admin)).status_code == 200


async def test_region_cannot_be_changed(api: Api) -> None:
    tenant = await api.new_tenant("eu")
    response = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"region": "us"}, headers=api.operator
    )
    assert_problem(response, 400, "invalid_input")
    assert (await api.client.get(f"/v1/tenants/{tenant.id}", headers=api.operator)).json()[
        "region"
    ] == "eu"


async def test_operator_routes_refuse_tenant_keys_and_bad_tokens(api: Api) -> None:
    tenant = await api.new_tenant("eu")
    assert_problem(
        await api.client.get("/v1/tenants", headers=tenant.admin), 403, "operator_required"
    )
    assert_problem(
        await api.client.get("/v1/tenants", headers=bearer("not-the-token")),
        401,
        "invalid_credentials",
    )
    assert_problem(await api.client.get("/v1/tenants"), 401, "invalid_credentials")


async def test_operator_cannot_use_tenant_routes(api: Api) -> None:
    assert_problem(
        await api.client.get("/v1/me", headers=api.operator), 403, "tenant_principal_required"
    )
    assert_problem(
        await api.client.get("/v1/admin/users", headers=api.operator),
        403,
        "tenant_principal_required",
    )


async def test_bootstrap_admin_for_unknown_tenant_is_404(api: Api) -> None:
    response = await api.client.post(
        f"/v1/tenants/{uuid.uuid4()}/admins",
        json={"email": "a@b.example", "display_name": "A"},
        headers=api.operator,
    )
    assert_problem(response, 404, "tenant_not_found")
