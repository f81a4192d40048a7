"""The console in a real browser: Debian's Chromium, headless, driven by Playwright.

One Bulwark server (uvicorn on 127.0.0.1, a fresh SQLite deployment), the development IdP that
``make run`` ships (``auth/devidp.py``) as the tenant's OIDC provider, and a scripted model server
(``tests/peers/llm_peer.py``) as every model tier. People sign in by picking themselves at the
IdP, exactly as in the embedded default. One screenshot per page goes to
``var/test-output/console/`` (or ``$BULWARK_TEST_OUTPUT/console``).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from auth.devidp import DevIdp, DevUser, LoopbackServer, RunningIdp
from kernel.settings import Settings
from migrations.runner import migrate
from tests.peers.llm_peer import LlmPeer, RunningPeer
from tests.support.chat import chat_settings
from tests.support.deployments import OPERATOR_TOKEN, base_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("BULWARK_TEST_OUTPUT", ROOT / "var" / "test-output")) / "console"
POLICY = """# Travel policy

## Hotels

Employees may book hotels up to 180 euros per night in Paris and 140 euros elsewhere.
"""
ANSWER = "Employees may book hotels up to 180 euros per night in Paris [1]."
QUESTION = "What is the hotel limit per night in Paris?"
WAIT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get)")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        **base_settings(tmp_path_factory.mktemp("console"), identity={"public_url": base_url})
    )
    migrate(settings)
    idp = DevIdp(redirect_prefix=f"{base_url}/auth/")
    peer = LlmPeer(name="console", text=ANSWER)
    with RunningIdp(idp), RunningPeer(peer):
        app = create_app(chat_settings(settings, peer, peer))  # the peer has its port now
        with LoopbackServer(app, port, lifespan="on", wait=60):
            yield {"base_url": base_url, "peer": peer, **_seed(base_url, idp)}


def _seed(base_url: str, idp: DevIdp) -> dict[str, Any]:
    """A tenant whose OIDC IdP is the development IdP (as `bulwark demo` sets up for make run),
    with an admin, a compliance officer and a member of the engineering group."""
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        tenant = client.post(
            "/v1/tenants", json={"slug": slug, "name": "Acme", "region": "eu"}, headers=operator
        )
        assert tenant.status_code == 201, tenant.text
        boot = client.post(
            f"/v1/tenants/{tenant.json()['id']}/admins",
            json={"email": f"admin@{slug}.example", "display_name": "Ada Admin"},
            headers=operator,
        )
        assert boot.status_code == 201, boot.text
        admin = {"Authorization": f"Bearer {boot.json()['api_key']['key']}"}
        oidc = client.put(
            "/v1/admin/sso/oidc",
            json={
                "issuer": idp.issuer_of(slug),
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
            },
            headers=admin,
        )
        assert oidc.status_code == 200, oidc.text
        people = {
            "admin": ("Ada Admin", ["tenant_admin"], ()),
            "carl": ("Carl Compliance", ["compliance_officer"], ()),
            "alice": ("Alice Engineer", ["member"], ("engineering",)),
        }
        for local, (name, roles, _) in list(people.items())[1:]:
            created = client.post(
                "/v1/admin/users",
                json={"email": f"{local}@{slug}.example", "display_name": name, "roles": roles},
                headers=admin,
            )
            assert created.status_code == 201, created.text
        group = client.post("/v1/admin/groups", json={"name": "engineering"}, headers=admin)
        alice = created.json()["id"]
        joined = client.put(f"/v1/admin/groups/{group.json()['id']}/members/{alice}", headers=admin)
        assert joined.status_code == 204, joined.text
    idp.realms[slug] = [
        DevUser(f"dev-{local}", f"{local}@{slug}.example", name, groups)
        for local, (name, _, groups) in people.items()
    ]
    return {"slug": slug, "admin": admin}


@pytest.fixture(scope="module")
def browser(world: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, world: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(base_url=world["base_url"], accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    problems: list[str] = []
    # A CSP violation or a script error shows in the console: the test fails on any. (Refused
    # pages, 403 by design here, are logged as failed loads: those are expected.)
    opened.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    opened.on("pageerror", lambda e: problems.append(str(e)))
    yield opened
    context.close()
    assert problems == []


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def sign_in(page: Any, world: dict[str, Any], who: str) -> None:
    """Through the console's entry and the tenant's IdP, choosing ``who`` there."""
    page.goto("/console")
    page.get_by_label("Organisation (tenant)").fill(world["slug"])
    page.get_by_role("button", name="Continue").click()
    shot(page, "sign-in")
    page.get_by_role("link", name="Sign in with OIDC").click()
    page.wait_for_url("**/protocol/openid-connect/auth?**")
    page.get_by_role("button", name=f"<{who}@{world['slug']}.example>").click()
    page.wait_for_url(f"**/console/{world['slug']}/*")


def test_admin_runs_the_tenant_from_the_console(page: Any, world: dict[str, Any]) -> None:
    slug = world["slug"]
    sign_in(page, world, "admin")
    assert page.url.endswith(f"/console/{slug}/overview")
    assert page.locator("svg[data-chart]").count() == 6

    page.get_by_role("link", name="Users and groups").click()
    assert page.get_by_role("cell", name=f"alice@{slug}.example", exact=True).first.is_visible()
    shot(page, "users")

    # Upload with progress, then watch ingestion finish (the list refreshes itself).
    page.get_by_role("link", name="Documents").click()
    policy = OUTPUT.parent / f"travel-{slug}.md"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY)
    page.get_by_label("File (txt, md, html, pdf, docx)").set_input_files(str(policy))
    page.get_by_label("Title (optional)").fill("Travel policy")
    page.get_by_label("Who may read it at first").select_option("tenant")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/documents?done=uploaded")
    page.locator('[data-status="ready"]').wait_for()
    shot(page, "documents")

    # The playground: an answer with its citation, cache status, tier and cost.
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Your question").fill(QUESTION)
    page.get_by_role("button", name="Ask").click()
    assert page.locator("[data-answer]").inner_text() == ANSWER
    citations = page.locator("[data-citations] li")
    assert citations.count() == 1 and "Travel policy" in citations.first.inner_text()
    assert page.locator("[data-cache]").get_attribute("data-cache") == "miss"
    assert page.locator("[data-tier]").inner_text() in ("small", "mid", "frontier")
    assert page.locator("[data-cost]").inner_text().startswith("$")
    shot(page, "playground")

    # The ACL editor: restrict the document to the engineering group.
    page.get_by_role("link", name="Documents").click()
    page.get_by_role("link", name="Travel policy").click()
    page.get_by_label("Restricted to the groups and people below").check()
    page.get_by_label("engineering").check()
    page.get_by_label(f"admin@{slug}.example").check()  # admins read by the ACL too
    page.get_by_role("button", name="Save access list").click()
    page.wait_for_url("**?done=acl")
    assert page.get_by_label("engineering").is_checked()
    shot(page, "document")
    document_id = page.url.split("/documents/")[1].split("?")[0]
    read = httpx.get(f"{world['base_url']}/v1/documents/{document_id}", headers=world["admin"])
    acl = read.json()["acl"]
    assert acl["visibility"] == "restricted" and len(acl["groups"]) == len(acl["users"]) == 1

    page.get_by_role("link", name="Sign-in and SCIM").click()
    shot(page, "sso")
    page.get_by_role("link", name="Test OIDC sign-in").click()
    page.get_by_role("button", name=f"<admin@{slug}.example>").click()
    page.wait_for_url("**/sso?done=signin")
    assert "Test sign-in succeeded" in page.get_by_role("status").first.inner_text()

    page.get_by_role("link", name="DLP policy").click()
    shot(page, "dlp")
    page.get_by_role("link", name="Models and quotas").click()
    shot(page, "models")
    page.get_by_role("link", name="Keys").click()
    before = int(page.locator("[data-kms-version]").inner_text())
    page.get_by_role("button", name="Rotate the data key").click()
    page.wait_for_url("**/kms?done=rotated")
    assert int(page.locator("[data-kms-version]").inner_text()) == before + 1
    shot(page, "kms")

    page.get_by_role("link", name="Audit log").click()
    assert page.locator('tr[data-action="document.acl_changed"]').count() == 1
    shot(page, "audit")
    page.get_by_role("link", name="Verify the chain").click()
    assert page.locator('[data-verify="ok"]').is_visible()
    shot(page, "audit-verify")

    # The overview now counts the playground's answer (ledger and audit log).
    page.get_by_role("link", name="Overview").click()
    assert page.locator('[data-total="Model requests"]').inner_text() == "1"
    assert page.locator('[data-total="Chat answers"]').inner_text() == "1"
    assert page.locator('[data-total="Cache hit ratio"]').inner_text() == "0%"
    shot(page, "overview")


def test_member_is_refused_the_admin_pages(page: Any, world: dict[str, Any]) -> None:
    slug = world["slug"]
    sign_in(page, world, "alice")
    assert page.url.endswith(f"/console/{slug}/playground")
    assert page.get_by_role("link", name="Overview").count() == 0
    for name in ("overview", "users", "documents", "sso", "kms", "audit", "sar"):
        response = page.goto(f"/console/{slug}/{name}")
        assert response.status == 403, name
        assert page.get_by_role("heading", name="403 · Not allowed").is_visible()
    shot(page, "refused")


def test_officer_runs_an_access_request(page: Any, world: dict[str, Any]) -> None:
    slug = world["slug"]
    sign_in(page, world, "carl")
    page.get_by_role("link", name="Subject access").click()
    page.get_by_label("Who").fill(f"alice@{slug}.example")
    page.get_by_role("button", name="Start request").click()
    page.locator('[data-sar-status="done"]').wait_for()
    shot(page, "sar-request")
    with page.expect_download() as download:
        page.locator("[data-sar-export]").click()
    export = Path(download.value.path())
    with zipfile.ZipFile(export) as archive:
        names = archive.namelist()
    assert any(name.endswith("report.json") for name in names), names
    with page.expect_download() as download:
        page.locator("[data-sar-report]").click()
    report = json.loads(Path(download.value.path()).read_text())
    assert report["signature"] and report["report"]
    page.get_by_role("link", name="All requests").click()
    shot(page, "sar")
