"""OIDC through python-keycloak against a Keycloak-shaped provider on 127.0.0.1: the code flow
with PKCE, and IdP access tokens accepted (or refused) as API bearer tokens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.conftest import Api, TenantHandle, assert_problem, bearer
from tests.peers.oidc_provider import OidcProvider, RunningProvider


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    provider = OidcProvider()
    provider.rotate("RS256")
    provider.rotate("ES256")
    with RunningProvider(provider) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_user(idp: OidcProvider) -> None:
    n = uuid.uuid4().hex[:8]
    idp.next_user = {
        "sub": f"sub-{n}",
        "email": f"u{n}@idp.example",
        "name": f"User {n}",
        "groups": ["engineering"],
    }
    idp.id_token_overrides = {}


async def configure(api: Api, tenant: TenantHandle, idp: OidcProvider, **extra: Any) -> None:
    body = {
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        **extra,
    }
    response = await api.client.put("/v1/admin/sso/oidc", json=body, headers=tenant.admin)
    assert response.status_code == 200, response.text


def cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0].strip('"')
    raise AssertionError(f"no {name} cookie set")


async def sign_in(
    api: Api, tenant: TenantHandle, idp: OidcProvider, return_to: str = "/v1/me"
) -> httpx.Response:
    login = await api.client.get(f"/auth/{tenant.slug}/oidc/login", params={"return_to": return_to})
    assert login.status_code == 302, login.text
    state_cookie = cookie_value(login, "bulwark_oidc")
    # The browser follows the redirect to the IdP, which sends it back with a code.
    async with httpx.AsyncClient() as browser:
        at_idp = await browser.get(login.headers["location"])
    assert at_idp.status_code == 302
    back = urlparse(at_idp.headers["location"])
    query = parse_qs(back.query)
    return await api.client.get(
        back.path,
        params={"code": query["code"][0], "state": query["state"][0]},
        headers={"Cookie": f"bulwark_oidc={state_cookie}"},
    )


async def test_code_flow_with_pkce_signs_in_and_provisions(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    await api.client.put(
        "/v1/admin/role-mappings",
        headers=tenant.admin,
        json={
            "default_role": "member",
            "mappings": [{"idp_group": "engineering", "role": "compliance_officer"}],
        },
    )

    login = await api.client.get(f"/auth/{tenant.slug}/oidc/login", follow_redirects=False)
    assert login.status_code == 302, login.text
    query = parse_qs(urlparse(login.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"] and query["code_challenge"]
    assert query["redirect_uri"] == [f"http://127.0.0.1:8000/auth/{tenant.slug}/oidc/callback"]
    assert "HttpOnly" in login.headers["set-cookie"] and "Secure" in login.headers["set-cookie"]

    done = await sign_in(api, tenant, idp, return_to="/v1/me?x=1")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/v1/me?x=1"
    session_cookie = done.headers["set-cookie"]
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie.replace("Lax", "lax")
    token = cookie_value(done, "bulwark_session")
    me = (await api.client.get("/v1/me", headers=bearer(token))).json()
    assert me["user"]["email"] == idp.next_user["email"]
    assert me["auth_method"] == "session"
    assert me["roles"] == ["compliance_officer", "member"]  # default role + mapped group
    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "sso.login"}, headers=tenant.admin
        )
    ).json()["items"]
    assert [(e["outcome"], e["detail"]["reason"]) for e in events] == [("success", "ok")]

    # Signing in again links to the same user, and updates the name the IdP now sends.
    idp.next_user["name"] = "Renamed"
    again = cookie_value(await sign_in(api, tenant, idp), "bulwark_session")
    me2 = (await api.client.get("/v1/me", headers=bearer(again))).json()
    assert me2["user"]["id"] == me["user"]["id"]
    assert me2["user"]["display_name"] == "Renamed"


async def test_open_redirects_are_refused(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:x"):
        done = await sign_in(api, tenant, idp, return_to=hostile)
        assert done.headers["location"] == "/v1/me"


async def test_callback_failures_are_401_and_audited(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    login = await api.client.get(f"/auth/{tenant.slug}/oidc/login", follow_redirects=False)
    state_cookie = cookie_value(login, "bulwark_oidc")
    callback = f"/auth/{tenant.slug}/oidc/callback"

    no_cookie = await api.client.get(callback, params={"code": "x", "state": "y"})
    assert assert_problem(no_cookie, 401, "oidc_login_failed")["reason"] == "missing_state"
    wrong_state = await api.client.get(
        callback,
        params={"code": "x", "state": "forged"},
        headers={"Cookie": f"bulwark_oidc={state_cookie}"},
    )
    assert assert_problem(wrong_state, 401)["reason"] == "state_mismatch"
    state = parse_qs(urlparse(login.headers["location"]).query)["state"][0]
    bad_code = await api.client.get(
        callback,
        params={"code": "not-issued", "state": state},
        headers={"Cookie": f"bulwark_oidc={state_cookie}"},
    )
    assert assert_problem(bad_code, 401)["reason"] == "code_exchange_failed"

    idp.id_token_overrides = {"nonce": "replayed-nonce"}
    assert assert_problem(await sign_in(api, tenant, idp), 401)["reason"] == "wrong_nonce"
    idp.id_token_overrides = {"aud": "someone-else", "azp": "someone-else"}
    assert assert_problem(await sign_in(api, tenant, idp), 401)["reason"] == "wrong_audience"

    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "sso.login"}, headers=tenant.admin
        )
    ).json()["items"]
    assert [e["detail"]["reason"] for e in events] == [
        "missing_state",
        "state_mismatch",
        "code_exchange_failed",
        "wrong_nonce",
        "wrong_audience",
    ]
    assert {e["outcome"] for e in events} == {"failure"}
    users = (await api.client.get("/v1/admin/users", headers=tenant.admin)).json()["items"]
    assert len(users) == 1  # nobody was provisioned by a failed login


async def test_idp_access_tokens_are_api_credentials(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    hint = {"X-Bulwark-Tenant": tenant.slug}
    for alg in ("RS256", "ES256"):
        token = idp.sign(idp.claims(sub=f"api-{alg}", email=f"{alg.lower()}@idp.example"), alg=alg)
        me = await api.client.get("/v1/me", headers={**bearer(token), **hint})
        assert me.status_code == 200, me.text
        assert me.json()["auth_method"] == "oidc"
        assert me.json()["user"]["email"] == f"{alg.lower()}@idp.example"
    assert_problem(await api.client.get("/v1/me", headers=bearer(token)), 401)  # no tenant hint


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ("none", "algorithm_not_allowed"),
        ("hs256", "algorithm_not_allowed"),
        ("expired", "expired"),
        ("future", "not_yet_valid"),
        ("issuer", "wrong_issuer"),
        ("audience", "wrong_audience"),
        ("tampered", "invalid_signature"),
        ("unknown_kid", "unknown_key"),
    ],
)
async def test_bad_bearer_tokens_are_refused(
    api: Api, idp: OidcProvider, forge: str, reason: str
) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    now = int(time.time())
    claims = idp.claims(sub="attacker", email="attacker@idp.example")
    token = {
        "none": lambda: idp.unsigned(claims),
        "hs256": lambda: idp.hs256_with_public_key(claims),
        "expired": lambda: idp.sign({**claims, "exp": now - 3600, "iat": now - 7200}),
        "future": lambda: idp.sign({**claims, "nbf": now + 3600}),
        "issuer": lambda: idp.sign({**claims, "iss": "http://127.0.0.1:9/realms/other"}),
        "audience": lambda: idp.sign({**claims, "aud": "other", "azp": "other"}),
        "tampered": lambda: _tamper(idp.sign(claims)),
        "unknown_kid": lambda: idp.sign(claims, kid="never-published"),
    }[forge]()
    response = await api.client.get(
        "/v1/me", headers={**bearer(token), "X-Bulwark-Tenant": tenant.slug}
    )
    assert assert_problem(response, 401, "oidc_login_failed")["reason"] == reason
    users = (await api.client.get("/v1/admin/users", headers=tenant.admin)).json()["items"]
    assert "attacker@idp.example" not in {u["email"] for u in users}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return ".".join((header, flipped, signature))


async def test_rotated_keys_are_fetched_on_unknown_kid(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    hint = {"X-Bulwark-Tenant": tenant.slug}
    first = idp.sign(idp.claims(sub="rot", email="rot@idp.example"))
    assert (await api.client.get("/v1/me", headers={**bearer(first), **hint})).status_code == 200
    rotated = idp.rotate("RS256")  # the IdP publishes a new key and signs with it
    second = idp.sign(idp.claims(sub="rot", email="rot@idp.example"), key=rotated)
    assert (await api.client.get("/v1/me", headers={**bearer(second), **hint})).status_code == 200


async def test_oidc_settings_keep_the_secret_sealed(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    assert_problem(
        await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin), 404, "oidc_not_configured"
    )
    bad = await api.client.put(
        "/v1/admin/sso/oidc",
        headers=tenant.admin,
        json={"issuer": "https://idp.example/tenant?x=1", "client_id": "c"},
    )
    assert_problem(bad, 422, "invalid_issuer")
    missing = await api.client.put(
        "/v1/admin/sso/oidc", headers=tenant.admin, json={"client_id": "c"}
    )
    assert_problem(missing, 422, "invalid_issuer")
    await configure(api, tenant, idp)
    read = (await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin)).json()
    assert read["has_client_secret"] is True
    assert idp.client_secret not in str(read)
    assert read["issuer"] == idp.issuer
    assert_problem(
        await api.client.get(f"/auth/no-such-tenant-{uuid.uuid4().hex[:6]}/oidc/login"),
        404,
        "tenant_not_found",
    )
    other = await api.new_tenant()
    assert_problem(
        await api.client.get(f"/auth/{other.slug}/oidc/login"), 404, "oidc_not_configured"
    )


async def test_an_unreachable_idp_is_a_clear_503(api: Api) -> None:
    tenant = await api.new_tenant()
    await api.client.put(
        "/v1/admin/sso/oidc",
        headers=tenant.admin,
        json={"issuer": "http://127.0.0.1:9/realms/gone", "client_id": "bulwark"},
    )
    response = await api.client.get(f"/auth/{tenant.slug}/oidc/login")
    assert_problem(response, 503, "idp_unavailable")
    token_like = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln"
    me = await api.client.get(
        "/v1/me", headers={**bearer(token_like), "X-Bulwark-Tenant": tenant.slug}
    )
    assert_problem(me, 503, "idp_unavailable")


async def test_an_identity_cannot_take_over_anothers_account(api: Api, idp: OidcProvider) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    first = await sign_in(api, tenant, idp)
    assert first.status_code == 303
    # Another subject at the IdP now asserts the same email: refused, not linked.
    idp.next_user = {**idp.next_user, "sub": f"impostor-{uuid.uuid4().hex[:6]}"}
    refused = await sign_in(api, tenant, idp)
    assert_problem(refused, 401, "invalid_credentials")
    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "sso.login"}, headers=tenant.admin
        )
    ).json()["items"]
    assert [(e["outcome"], e["detail"]["reason"]) for e in events] == [
        ("success", "ok"),
        ("failure", "invalid_credentials"),
    ]
