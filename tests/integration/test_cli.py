"""The CLI as a newcomer runs it: migrate, then demo (twice: it must be idempotent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import assert_problem, bearer


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["BULWARK_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


async def test_migrate_and_demo_are_idempotent_and_credentials_work(tmp_path: Path) -> None:
    assert "migrated eu" in run_cli("migrate", data_dir=tmp_path).stdout
    run_cli("migrate", data_dir=tmp_path)
    first = json.loads(run_cli("demo", data_dir=tmp_path).stdout)
    second = json.loads(run_cli("demo", data_dir=tmp_path).stdout)
    assert first == second
    assert json.loads((tmp_path / "demo-credentials.json").read_text()) == first
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0
    assert {slug: t["region"] for slug, t in first["tenants"].items()} == {
        "acme": "eu",
        "globex": "us",
    }
    acme = first["tenants"]["acme"]["users"]
    assert sorted(tuple(u["roles"]) for u in acme) == [
        ("compliance_officer",),
        ("member",),
        ("member",),
        ("tenant_admin",),
    ]
    member_groups = [u["groups"] for u in acme if u["roles"] == ["member"]]
    assert len(member_groups) == 2 and member_groups[0] != member_groups[1]

    # Each region's SQLite file exists on its own.
    assert (tmp_path / "regions" / "eu" / "bulwark.db").exists()
    assert (tmp_path / "regions" / "us" / "bulwark.db").exists()

    settings = Settings(data_dir=tmp_path)
    async with AsyncTestClient(app=create_app(settings)) as client:
        for slug, tenant in first["tenants"].items():
            for user in tenant["users"]:
                me = await client.get("/v1/me", headers=bearer(user["api_key"]))
                assert me.status_code == 200, me.text
                assert me.json()["tenant"]["slug"] == slug
                assert me.json()["user"]["email"] == user["email"]
                assert len(me.json()["group_ids"]) == len(user["groups"])
        tenants = await client.get("/v1/tenants", headers=bearer(first["operator_token"]))
        assert {t["slug"] for t in tenants.json()["items"]} == {"acme", "globex"}
        mars = await client.post(
            "/v1/tenants",
            json={"slug": "mars", "name": "Mars", "region": "mars"},
            headers=bearer(first["operator_token"]),
        )
        assert_problem(mars, 422, "unknown_region")


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "0.1.0"
