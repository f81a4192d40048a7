"""SCIM: a tenant's SCIM bearer token, as its admin issues it."""

from __future__ import annotations

from tests.support.tenants import Api, TenantHandle


async def issue_token(api: Api, tenant: TenantHandle) -> str:
    response = await api.client.post("/v1/admin/scim-token", headers=tenant.admin)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])
