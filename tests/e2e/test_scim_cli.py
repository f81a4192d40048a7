"""A peer SCIM client checks the live server: ``scim2 test`` (scim2-cli / scim2-tester) runs its
discovery, CRUD, PATCH (add/replace/remove of every attribute), attribute-selection and search
checks against ``bulwark serve`` on 127.0.0.1, and every check must report SUCCESS.

The server is the embedded default (SQLite) in a throw-away data dir, migrated by ``bulwark
migrate``; the tenant, its admin and its SCIM token are created through the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench._server import free_port

OPERATOR_TOKEN = "scim-cli-operator-token-0123456789"
SCIM2 = Path(sys.executable).parent / "scim2"


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env.update(
        {
            "BULWARK_DATA_DIR": str(tmp_path / "data"),
            "BULWARK_ENVIRONMENT": "test",
            "BULWARK_SECURITY__OPERATOR_TOKEN": OPERATOR_TOKEN,
            "BULWARK_IDENTITY__PUBLIC_URL": base_url,
            "BULWARK_OBSERVABILITY__LOG_LEVEL": "WARNING",
        }
    )
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def _scim_token(base_url: str) -> str:
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        tenant = client.post(
            "/v1/tenants", json={"slug": "acme", "name": "Acme", "region": "eu"}, headers=operator
        )
        assert tenant.status_code == 201, tenant.text
        admin = client.post(
            f"/v1/tenants/{tenant.json()['id']}/admins",
            json={"email": "admin@acme.example", "display_name": "Admin"},
            headers=operator,
        )
        assert admin.status_code == 201, admin.text
        key = admin.json()["api_key"]["key"]
        token = client.post("/v1/admin/scim-token", headers={"Authorization": f"Bearer {key}"})
        assert token.status_code == 201, token.text
        return str(token.json()["token"])


@pytest.mark.timeout(300)
def test_scim2_cli_compliance_check_reports_only_success(live_server: str) -> None:
    if not SCIM2.exists():
        pytest.fail(f"scim2-cli is not installed next to {sys.executable} (pip install -e .[dev])")
    token = _scim_token(live_server)
    # The token goes through the environment, not the command line (visible to other users).
    env = {**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}", "NO_COLOR": "1"}
    result = subprocess.run(
        [str(SCIM2), "--url", f"{live_server}/scim/v2/acme", "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    # One line per check, "<STATUS> <check name>", with its reason indented below it.
    statuses = [
        line.split(" ", 1)
        for line in output.splitlines()
        if line and not line[0].isspace() and not line.startswith("Performing")
    ]
    failures = [line for line in statuses if line[0] != "SUCCESS"]
    assert failures == [], output
    assert len(statuses) >= 100, output  # discovery, CRUD and PATCH checks for User and Group
    assert {name for _, name in statuses} >= {
        "service_provider_config_endpoint",
        "random_url",
        "object_creation",
        "object_replacement",
        "object_deletion",
        "check_add_attribute",
        "check_replace_attribute",
        "check_remove_attribute",
        "search_with_attributes",
    }
    assert result.returncode == 0, output
