"""The CLI as a newcomer runs it: migrate, then demo (twice: it must be idempotent)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from auth.devidp import RunningIdp, config_path, load_config
from bench._server import free_port
from kernel.settings import Settings
from tests.saml_idp import set_cookies
from tests.support.http import assert_problem, bearer


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
    port = free_port()
    assert "migrated eu" in run_cli("migrate", data_dir=tmp_path).stdout
    run_cli("migrate", data_dir=tmp_path)
    first = json.loads(run_cli("demo", "--dev-idp-port", str(port), data_dir=tmp_path).stdout)
    second = json.loads(run_cli("demo", "--dev-idp-port", str(port), data_dir=tmp_path).stdout)
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
        # The development IdP is on loopback: refused by the egress guard unless allow-listed.
        assert_problem(await client.get("/auth/acme/oidc/login"), 503, "idp_unavailable")
        acme_admin = bearer(first["tenants"]["acme"]["users"][0]["api_key"])
        refused = await client.get(
            "/v1/audit/events", params={"action": "egress.refused"}, headers=acme_admin
        )
        assert [e["detail"]["reason"] for e in refused.json()["items"]] == ["plain_http"]
    # `serve --dev-idp` allow-lists its exact origin, and nothing else.
    dev = Settings(data_dir=tmp_path, egress={"allow_origins": [f"http://127.0.0.1:{port}"]})
    async with AsyncTestClient(app=create_app(dev)) as client:
        await _sign_in_through_the_development_idp(client, tmp_path, first, port)


async def _sign_in_through_the_development_idp(
    client: AsyncTestClient[Litestar], data_dir: Path, creds: dict[str, Any], port: int
) -> None:
    """What `make run` sets up: `bulwark demo` points each demo tenant's OIDC at the dev IdP,
    and `serve --dev-idp` serves it; a person picks themselves there (no password) and lands
    in the console."""
    path = config_path(data_dir)
    assert path.stat().st_mode & 0o077 == 0
    idp = load_config(path)
    assert idp.port == port and sorted(idp.realms) == ["acme", "globex"]
    assert "password" not in path.read_text()
    admin = bearer(creds["tenants"]["acme"]["users"][0]["api_key"])
    oidc = (await client.get("/v1/admin/sso/oidc", headers=admin)).json()
    assert oidc["issuer"] == f"http://127.0.0.1:{port}/realms/acme"
    configured = await client.get(
        "/v1/audit/events", params={"action": "sso.configured"}, headers=admin
    )
    assert len(configured.json()["items"]) == 1  # the second demo changed nothing

    client.follow_redirects = False
    with RunningIdp(idp):
        login = await client.get("/auth/acme/oidc/login?return_to=/console/acme/home")
        async with httpx.AsyncClient() as browser:
            chooser = await browser.get(login.headers["location"])
            assert chooser.status_code == 200 and 'type="password"' not in chooser.text
            fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', chooser.text))
            before = chooser.text[: chooser.text.index("Ada Admin")]
            fields["user"] = str(before.count("<form") - 1)
            chosen = await browser.post(str(chooser.url), data=fields)
        assert chosen.status_code == 302
        back = urlsplit(chosen.headers["location"])
        done = await client.get(  # Bulwark redeems the code at the IdP
            back.path,
            params={k: v[0] for k, v in parse_qs(back.query).items()},
            headers={"Cookie": f"bulwark_oidc={set_cookies(login)['bulwark_oidc']['value']}"},
        )
    assert done.status_code == 303 and done.headers["location"] == "/console/acme/home"
    session = set_cookies(done)["bulwark_session"]["value"]
    client.cookies.clear()
    home = await client.get("/console/acme/home", headers={"Cookie": f"bulwark_session={session}"})
    assert home.headers["location"] == "/console/acme/overview"


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "0.1.0"


def test_the_development_idp_never_runs_in_production(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env.update({"BULWARK_DATA_DIR": str(tmp_path), "BULWARK_ENVIRONMENT": "production"})
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--dev-idp", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "never runs in production" in refused.stderr
