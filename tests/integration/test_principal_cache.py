"""The principal cache never outlives a change: checked across two API replicas.

Replica A is the suite's app; replica B is a second app over the same databases with its own
cache. Each test first makes B cache a principal, changes identity data through A (or, once,
with plain SQL that no Bulwark code sees), and expects B's very next request to reflect it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.main import create_app
from app.runtime import Runtime
from tests.support.deployments import Deployment
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle, context_of


@pytest.fixture
async def replica(deployment: Deployment) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(deployment.settings)) as other:
        yield other


async def _member(api: Api, tenant: TenantHandle) -> tuple[dict[str, Any], dict[str, str]]:
    user = await api.new_user(tenant)
    key = await api.new_key(tenant, user["id"])
    return user, bearer(key["key"])


async def _cached_group_member(
    api: Api, tenant: TenantHandle, replica: AsyncTestClient[Litestar]
) -> tuple[dict[str, Any], dict[str, str], str]:
    """A member of one group whose principal replica B has cached; returns the membership's
    path."""
    user, headers = await _member(api, tenant)
    group = await api.new_group(tenant)
    path = f"/v1/admin/groups/{group['id']}/members/{user['id']}"
    assert (await api.client.put(path, headers=tenant.admin)).status_code == 204
    assert (await _me(replica, headers))["group_ids"] == [group["id"]]
    return user, headers, path


async def _me(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_key_revoked_on_one_replica_is_refused_by_the_next_request_on_another(
    api: Api, replica: AsyncTestClient[Litestar]
) -> None:
    tenant = await api.new_tenant()
    _, headers = await _member(api, tenant)
    key_id = headers["Authorization"].split("_")[2]
    for _ in range(3):  # cached on B after the first
        await _me(replica, headers)
    revoked = await api.client.delete(
        f"/v1/admin/api-keys/{uuid.UUID(hex=key_id)}", headers=tenant.admin
    )
    assert revoked.status_code == 204
    assert_problem(await replica.get("/v1/me", headers=headers), 401)


async def test_deactivation_and_role_changes_apply_to_the_next_request_on_another_replica(
    api: Api, replica: AsyncTestClient[Litestar]
) -> None:
    tenant = await api.new_tenant()
    user, headers = await _member(api, tenant)
    promoted = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"roles": ["tenant_admin"]}, headers=tenant.admin
    )
    assert promoted.status_code == 200
    assert (await replica.get("/v1/admin/users", headers=headers)).status_code == 200

    demoted = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"roles": ["member"]}, headers=tenant.admin
    )
    assert demoted.status_code == 200
    assert_problem(await replica.get("/v1/admin/users", headers=headers), 403)

    await _me(replica, headers)
    deactivated = await api.client.patch(
        f"/v1/admin/users/{user['id']}", json={"active": False}, headers=tenant.admin
    )
    assert deactivated.status_code == 200
    assert_problem(await replica.get("/v1/me", headers=headers), 401)


async def test_a_membership_change_applies_to_the_next_request_on_another_replica(
    api: Api, replica: AsyncTestClient[Litestar]
) -> None:
    tenant = await api.new_tenant()
    _, headers, path = await _cached_group_member(api, tenant, replica)
    assert (await api.client.delete(path, headers=tenant.admin)).status_code == 204
    assert (await _me(replica, headers))["group_ids"] == []


async def test_a_suspended_tenant_is_refused_by_the_next_request_on_another_replica(
    api: Api, replica: AsyncTestClient[Litestar]
) -> None:
    tenant = await api.new_tenant()
    await _me(replica, tenant.admin)
    suspended = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"status": "suspended"}, headers=api.operator
    )
    assert suspended.status_code == 200
    assert_problem(await replica.get("/v1/me", headers=tenant.admin), 403, "tenant_suspended")
    restored = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"status": "active"}, headers=api.operator
    )
    assert restored.status_code == 200
    await _me(replica, tenant.admin)


async def test_a_change_made_in_plain_sql_still_invalidates_cached_principals(
    api: Api, replica: AsyncTestClient[Litestar], runtime: Runtime
) -> None:
    """The epoch is kept by database triggers, so even a change no Bulwark code made (an
    operator's SQL, a restore) is seen: here a membership deleted behind the API's back."""
    tenant = await api.new_tenant()
    user, headers, _ = await _cached_group_member(api, tenant, replica)
    async with runtime.registry.tenant_transaction(context_of(tenant)) as session:
        await session.execute(
            text("DELETE FROM memberships WHERE tenant_id = :t AND user_id = :u"),
            {"t": _stored(session, tenant.id), "u": _stored(session, user["id"])},
        )
    assert (await _me(replica, headers))["group_ids"] == []


async def test_a_cached_key_id_with_a_wrong_secret_is_refused(
    api: Api, replica: AsyncTestClient[Litestar]
) -> None:
    tenant = await api.new_tenant()
    _, headers = await _member(api, tenant)
    await _me(replica, headers)
    token = headers["Authorization"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_problem(await replica.get("/v1/me", headers={"Authorization": forged}), 401)
    await _me(replica, headers)


def _stored(session: Any, value: str) -> Any:
    """A UUID as the backend stores it (PostgreSQL: uuid; SQLite: 32 hex characters)."""
    parsed = uuid.UUID(value)
    return parsed if session.bind.dialect.name == "postgresql" else parsed.hex
