"""Tenants through the HTTP API, as a client would create and use them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth.context import system_context
from kernel.tenancy import TenantContext, TenantRoute
from tests.support.deployments import OPERATOR_TOKEN
from tests.support.http import bearer


@dataclass
class TenantHandle:
    id: str
    slug: str
    region: str
    admin_key: str
    admin_id: str

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.admin_key)


class Api:
    """Small helpers over the HTTP API, as a client would use it."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.operator = bearer(OPERATOR_TOKEN)

    async def new_tenant(self, region: str = "eu") -> TenantHandle:
        slug = f"t-{uuid.uuid4().hex[:12]}"
        created = await self.client.post(
            "/v1/tenants",
            json={"slug": slug, "name": f"Tenant {slug}", "region": region},
            headers=self.operator,
        )
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        boot = await self.client.post(
            f"/v1/tenants/{tenant_id}/admins",
            json={"email": f"admin@{slug}.example", "display_name": "Admin"},
            headers=self.operator,
        )
        assert boot.status_code == 201, boot.text
        body = boot.json()
        return TenantHandle(tenant_id, slug, region, body["api_key"]["key"], body["user"]["id"])

    async def new_user(
        self, tenant: TenantHandle, roles: list[str] | None = None, email: str | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/users",
            json={
                "email": email or f"u-{uuid.uuid4().hex[:8]}@{tenant.slug}.example",
                "display_name": "User",
                "roles": roles or ["member"],
            },
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def new_group(self, tenant: TenantHandle, name: str | None = None) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/groups",
            json={"name": name or f"g-{uuid.uuid4().hex[:8]}"},
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def new_key(self, tenant: TenantHandle, user_id: str) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/admin/api-keys", json={"user_id": user_id, "name": "k"}, headers=tenant.admin
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def context_of(tenant: TenantHandle) -> TenantContext:
    """A system context for a test tenant, built the only way there is: through ``auth``."""
    return system_context(TenantRoute(uuid.UUID(tenant.id), tenant.slug, tenant.region, "active"))
