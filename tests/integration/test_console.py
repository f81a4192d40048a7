"""The console over HTTP (no browser): sign-in entry, sessions, roles, CSRF, security headers,
and forms that act through the REST API. The browser tests (tests/e2e/test_console_browser.py)
drive the same pages in Chromium."""

from __future__ import annotations

from tests.console_client import ConsoleSession, saml_sign_in
from tests.saml_idp import TestIdp, configure, set_cookies
from tests.support.http import bearer
from tests.support.tenants import Api

ADMIN_PAGES = ("overview", "users", "documents", "sso", "dlp", "models", "kms")


async def test_entry_picks_the_tenant_and_offers_its_sign_in(api: Api) -> None:
    tenant = await api.new_tenant()
    chooser = await api.client.get("/console", params={"tenant": tenant.slug})
    assert chooser.status_code == 303 and chooser.headers["location"] == f"/console/{tenant.slug}"

    page = await api.client.get(f"/console/{tenant.slug}")
    assert page.status_code == 200
    assert "no single sign-on configured" in page.text  # nothing configured yet, no password form
    assert "password" not in page.text.lower().replace("never asks for a password", "")

    await configure(api, tenant, TestIdp())
    page = await api.client.get(f"/console/{tenant.slug}")
    back = f"/console/{tenant.slug}/home"
    assert f'href="/auth/{tenant.slug}/saml/login?return_to={back}"' in page.text
    assert "/oidc/login" not in page.text

    assert (await api.client.get("/console/no-such-tenant")).status_code == 404
    # Without a session every page leads back to the tenant's sign-in.
    for name in (*ADMIN_PAGES, "playground", "audit", "sar"):
        response = await api.client.get(f"/console/{tenant.slug}/{name}")
        assert response.status_code == 303, (name, response.text)
        assert response.headers["location"] == f"/console/{tenant.slug}"


async def test_pages_are_behind_their_roles(api: Api) -> None:
    tenant = await api.new_tenant()
    idp = TestIdp()
    member = await api.new_user(tenant, ["member"])
    officer = await api.new_user(tenant, ["compliance_officer"])
    admin = await saml_sign_in(api, tenant, f"admin@{tenant.slug}.example", idp)
    as_member = await saml_sign_in(api, tenant, member["email"], idp)
    as_officer = await saml_sign_in(api, tenant, officer["email"], idp)

    home = await admin.get(f"/console/{tenant.slug}/home")
    assert home.headers["location"] == f"/console/{tenant.slug}/overview"
    for name in (*ADMIN_PAGES, "audit", "playground"):
        page = await admin.get(f"/console/{tenant.slug}/{name}")
        assert page.status_code == 200, (name, page.text)
    assert (await admin.get(f"/console/{tenant.slug}/sar")).status_code == 403
    # The DLP page offers every built-in type, the opt-in ORGANIZATION and NRP among them.
    built_in = (await admin.get(f"/console/{tenant.slug}/dlp")).text.split("Built-in entity types:")
    assert {"ORGANIZATION", "NRP", "PERSON"} <= set(
        built_in[1].split(".")[0].replace(",", " ").split()
    )

    assert (
        (await as_member.get(f"/console/{tenant.slug}/home"))
        .headers["location"]
        .endswith("/playground")
    )
    for name in (*ADMIN_PAGES, "audit", "sar"):
        refused = await as_member.get(f"/console/{tenant.slug}/{name}")
        assert refused.status_code == 403, name
        assert "Not allowed" in refused.text
    member_page = await as_member.get(f"/console/{tenant.slug}/playground")
    assert member_page.status_code == 200
    assert "/overview" not in member_page.text  # the navigation shows only what one may open

    for name in ("audit", "sar", "playground"):
        assert (await as_officer.get(f"/console/{tenant.slug}/{name}")).status_code == 200
    assert (await as_officer.get(f"/console/{tenant.slug}/users")).status_code == 403


async def test_security_headers_and_cookies(api: Api) -> None:
    tenant = await api.new_tenant()
    admin = await saml_sign_in(api, tenant, f"admin@{tenant.slug}.example")
    page = await api.client.get(f"/console/{tenant.slug}/overview", headers=admin.cookies())
    api.client.cookies.clear()
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and "style=" not in page.text and "onclick" not in page.text
    assert '<svg viewBox="0 0 640 180" role="img"' in page.text  # charts drawn on the server
    csrf = set_cookies(page)["bulwark_csrf"]
    assert csrf["httponly"] and csrf["secure"] and csrf["samesite"].lower() == "lax"

    script = await api.client.get("/console/static/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    style = await api.client.get("/console/static/console.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_forms_need_the_csrf_token_and_act_through_the_api(api: Api) -> None:
    tenant = await api.new_tenant()
    admin = await saml_sign_in(api, tenant, f"admin@{tenant.slug}.example")
    target = f"/console/{tenant.slug}/role-mappings"
    form = {"default_role": "member", "mappings": "engineering = compliance_officer"}

    # A cross-site form carries the session cookie but cannot know the token.
    forged = await api.client.post(target, data=form, headers=admin.cookies(csrf=False))
    assert forged.status_code == 403
    await admin.get(f"/console/{tenant.slug}/users")
    wrong = await api.client.post(
        target, data={**form, "_csrf_token": "0" * 128}, headers=admin.cookies()
    )
    assert wrong.status_code == 403
    api.client.cookies.clear()
    mappings = (await api.client.get("/v1/admin/role-mappings", headers=tenant.admin)).json()
    assert mappings["mappings"] == []

    saved = await admin.post(target, form)
    assert saved.status_code == 303 and saved.headers["location"].endswith("/users?done=mappings")
    mappings = (await api.client.get("/v1/admin/role-mappings", headers=tenant.admin)).json()
    assert mappings["mappings"] == [{"idp_group": "engineering", "role": "compliance_officer"}]
    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "role_mappings.updated"}, headers=tenant.admin
        )
    ).json()["items"]
    assert events[0]["actor"].startswith("ps_")  # the signed-in admin, through the API

    # The API's refusal is shown on the page, with its status; nothing is saved.
    bad = await admin.post(target, {"default_role": "emperor", "mappings": ""})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    mappings = (await api.client.get("/v1/admin/role-mappings", headers=tenant.admin)).json()
    assert mappings["default_role"] == "member"


async def test_scim_token_is_shown_once_and_logout_ends_the_session(api: Api) -> None:
    tenant = await api.new_tenant()
    admin = await saml_sign_in(api, tenant, f"admin@{tenant.slug}.example")
    issued = await admin.post(f"/console/{tenant.slug}/scim-token")
    assert issued.status_code == 200
    token = issued.text.split("data-scim-token>", 1)[1].split("<", 1)[0]
    assert token.startswith("bsc_")
    scim = await api.client.get(f"/scim/v2/{tenant.slug}/Users", headers=bearer(token))
    assert scim.status_code == 200
    assert token not in (await admin.get(f"/console/{tenant.slug}/sso")).text

    out = await admin.post(f"/console/{tenant.slug}/logout")
    assert out.status_code == 303 and out.headers["location"] == f"/console/{tenant.slug}"
    again = await admin.get(f"/console/{tenant.slug}/overview")
    assert again.status_code == 303  # the session was revoked server-side, not just forgotten


async def test_only_a_session_cookie_opens_the_console(api: Api) -> None:
    tenant = await api.new_tenant()
    for credential in (tenant.admin_key, api.operator["Authorization"].split()[1]):
        page = await api.client.get(
            f"/console/{tenant.slug}/overview", headers={"Cookie": f"bulwark_session={credential}"}
        )
        assert page.status_code == 303, page.text
    api.client.cookies.clear()
    session = ConsoleSession(api, tenant.slug, "bws_not-a-session")
    assert (await session.get(f"/console/{tenant.slug}/overview")).status_code == 303


async def test_the_oidc_form_saves_any_issuer_with_its_claim_paths(api: Api) -> None:
    tenant = await api.new_tenant()
    admin = await saml_sign_in(api, tenant, f"admin@{tenant.slug}.example")
    await admin.get(f"/console/{tenant.slug}/sso")
    form = {
        "issuer": "http://127.0.0.1:9/4e1c5b5e-0000-4000-8000-000000000001/v2.0",
        "client_id": "app-1",
        "client_secret": "s3cret",
        "scope": "openid email profile",
        "enabled": "on",
        "audience": "api://bulwark",
        "claim_user_id": "oid",
        "claim_groups": "groups",
        "claim_roles": "roles",
    }
    saved = await admin.post(f"/console/{tenant.slug}/sso/oidc", form)
    assert saved.status_code == 303, saved.text
    stored = (await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin)).json()
    assert (stored["issuer"], stored["audience"]) == (form["issuer"], "api://bulwark")
    assert (stored["claims"]["user_id"], stored["claims"]["roles"]) == ("oid", "roles")
    page = (await admin.get(f"/console/{tenant.slug}/sso")).text
    assert 'value="realm_access.roles"' not in page and 'value="roles"' in page
    assert "s3cret" not in page
