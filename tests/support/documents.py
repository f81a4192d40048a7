"""Documents through the HTTP API: add one (waiting for its ingestion job), search, and a member
with a key of their own."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.http import bearer
from tests.support.tenants import Api, TenantHandle


async def wait_for_job(api: Api, tenant: TenantHandle, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job = (await api.client.get(f"/v1/jobs/{job_id}", headers=tenant.admin)).json()
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def add(
    api: Api,
    tenant: TenantHandle,
    title: str,
    text: str,
    acl: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "text": text, **extra}
    if acl is not None:
        body["acl"] = acl
    response = await api.client.post("/v1/documents", json=body, headers=headers or tenant.admin)
    assert response.status_code == 202, response.text
    accepted = response.json()
    if accepted["job_id"]:
        job = await wait_for_job(api, tenant, accepted["job_id"])
        assert job["status"] == "succeeded", job
    return dict(accepted)


async def search(api: Api, headers: dict[str, str], query: str) -> list[dict[str, Any]]:
    response = await api.client.post(
        "/v1/search", json={"query": query, "top_k": 5}, headers=headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])


async def member(
    api: Api, tenant: TenantHandle, **profile: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    user = await api.new_user(tenant)
    if profile:
        await api.client.patch(f"/v1/admin/users/{user['id']}", json=profile, headers=tenant.admin)
    return user, bearer((await api.new_key(tenant, user["id"]))["key"])
