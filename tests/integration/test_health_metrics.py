from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

from litestar.testing import AsyncTestClient

from app.main import create_app
from kernel.settings import Settings
from migrations.runner import migrate
from tests.support.deployments import base_settings
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api

UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:9/none"


async def test_healthz_and_readyz_name_every_region(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "control": "ok", "regions": {"eu": "ok", "us": "ok"}}


def _settings_with_broken_us(tmp_path: Path) -> Settings:
    healthy = Settings(**base_settings(tmp_path))
    regions = {name: region.model_dump() for name, region in healthy.regions.items()}
    regions["us"]["database_url"] = UNREACHABLE
    return Settings(**base_settings(tmp_path, regions=regions))


async def test_readyz_is_503_naming_the_failing_region(tmp_path: Path) -> None:
    await asyncio.to_thread(migrate, Settings(**base_settings(tmp_path)))
    settings = _settings_with_broken_us(tmp_path)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/readyz")
        body = assert_problem(response, 503, "not_ready")
        assert body["failing"] == ["us"]
        assert body["regions"] == {"eu": "ok", "us": "unavailable"}

        # A tenant cannot be created in the broken region (its keys live there): a clear 503
        # naming the region, and nothing half-created in the control plane.
        api = Api(client)
        created = await client.post(
            "/v1/tenants",
            json={"slug": "usco", "name": "US Co", "region": "us"},
            headers=api.operator,
        )
        problem = assert_problem(created, 503, "database_unavailable")
        assert problem["region"] == "us"
        assert "nobody" not in created.text  # no connection string or driver message leaks
        listed = await client.get("/v1/tenants", headers=api.operator)
        assert "usco" not in {t["slug"] for t in listed.json()["items"]}
        # The healthy region still works.
        created = await client.post(
            "/v1/tenants",
            json={"slug": "euco", "name": "EU Co", "region": "eu"},
            headers=api.operator,
        )
        assert created.status_code == 201


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant)
    await api.client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
    text = (await api.client.get("/metrics")).text
    assert 'path="/v1/admin/users/{user_id}"' in text
    assert user["id"] not in text
    assert "litestar_request_duration_seconds_bucket" in text
    assert "litestar_requests_in_progress" in text


async def test_logs_are_json_with_ids_and_no_bodies(api: Api) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        tenant = await api.new_tenant()
        secret_email = "very.private.person@example.org"
        await api.client.post(
            "/v1/admin/users",
            json={"email": secret_email, "display_name": "Private Person"},
            headers={**tenant.admin, "X-Request-ID": "log-check-1"},
        )
        await api.client.get("/v1/me", headers=bearer("bwk_wrong"))
    finally:
        root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line.get("request_id") == "log-check-1"]
    assert access and access[0]["route"] == "/v1/admin/users" and access[0]["status"] == 201
    assert len(access[0]["trace_id"]) == 32
    assert access[0]["tenant_id"] == tenant.id
    joined = stream.getvalue()
    assert secret_email not in joined and "Private Person" not in joined
    assert tenant.admin_key not in joined


async def test_openapi_document_describes_auth_and_strict_bodies(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/me"]["get"]["security"] == [{"BearerAuth": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    create = schema["components"]["schemas"]["TenantCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["region"]["enum"] == ["eu", "us"]
    responses = schema["paths"]["/v1/admin/users/{user_id}"]["get"]["responses"]
    assert {"200", "401", "403", "404"} <= set(responses)
