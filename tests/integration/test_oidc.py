"""OIDC with two independent providers on 127.0.0.1, each with its own issuer shape:

- a Keycloak-shaped one (``/realms/<name>``; Bulwark's development IdP, jwcrypto), and
- an Entra-ID-shaped one (``/<tenant-guid>/v2.0``; Authlib's authorization server on Flask).

Each runs the browser's code flow with PKCE and has its access tokens accepted (or refused) as
API bearer tokens; Bulwark knows neither shape, only the issuer it was given.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.peers.entra_provider import EntraProvider
from tests.peers.oidc_provider import OidcProvider, RunningProvider
from tests.peers.static_http import StaticHttp
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle

PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass
class Peer:
    """One provider behind the operations the tests need, whatever its own API."""

    name: str
    provider: Any
    # What Bulwark is configured with beyond issuer and client (audience, claim paths).
    settings: dict[str, Any]
    sign: Callable[..., str]
    bearer_claims: Callable[..., dict[str, Any]]
    unknown_kid: Callable[[dict[str, Any]], str]
    rotate_and_sign: Callable[[dict[str, Any]], str]
    algorithms: tuple[str, ...]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    def prepare(self, tenant: TenantHandle) -> None:
        if isinstance(self.provider, EntraProvider):
            self.provider.register_redirect_uri(f"{PUBLIC_URL}/auth/{tenant.slug}/oidc/callback")


@pytest.fixture(scope="module")
def keycloak_shaped() -> Iterator[OidcProvider]:
    provider = OidcProvider()
    provider.rotate("RS256")
    provider.rotate("ES256")
    with RunningProvider(provider) as running:
        yield running


@pytest.fixture(scope="module")
def entra_shaped() -> Iterator[EntraProvider]:
    with EntraProvider() as provider:
        yield provider


def _keycloak_peer(provider: OidcProvider) -> Peer:
    def rotate_and_sign(claims: dict[str, Any]) -> str:
        return str(provider.sign(claims, key=provider.rotate("RS256")))

    return Peer(
        name="keycloak",
        provider=provider,
        settings={"claims": {"roles": "realm_access.roles"}},
        sign=lambda claims, alg="RS256", kid=None: provider.sign(claims, alg=alg, kid=kid),
        bearer_claims=provider.claims,
        unknown_kid=lambda claims: provider.sign(claims, kid="never-published"),
        rotate_and_sign=rotate_and_sign,
        algorithms=("RS256", "ES256"),
    )


def _entra_peer(provider: EntraProvider) -> Peer:
    def rotate_and_sign(claims: dict[str, Any]) -> str:
        provider.rotate("RS256")
        return provider.mint(claims)

    return Peer(
        name="entra",
        provider=provider,
        settings={"audience": provider.api_audience, "claims": {"roles": "roles"}},
        sign=lambda claims, alg="RS256", kid=None: provider.mint(claims, alg=alg, kid=kid),
        bearer_claims=lambda **o: provider.claims(
            **{"aud": provider.api_audience, "azp": provider.client_id, **o}
        ),
        unknown_kid=provider.unknown_kid,
        rotate_and_sign=rotate_and_sign,
        algorithms=("RS256", "ES256", "PS256"),
    )


@pytest.fixture(params=["keycloak", "entra"])
def idp(request: pytest.FixtureRequest) -> Peer:
    if request.param == "keycloak":
        provider: Any = request.getfixturevalue("keycloak_shaped")
        n = uuid.uuid4().hex[:8]
        provider.next_user = {
            "sub": f"sub-{n}",
            "email": f"u{n}@idp.example",
            "name": f"User {n}",
            "groups": ["engineering"],
            "realm_access": {"roles": ["auditor"]},
        }
        provider.id_token_overrides = {}
        return _keycloak_peer(provider)
    provider = request.getfixturevalue("entra_shaped")
    n = uuid.uuid4().hex[:8]
    provider.next_user = {
        "sub": f"pairwise-{n}",
        "oid": str(uuid.uuid4()),
        "email": f"u{n}@contoso.example",
        "name": f"User {n}",
        "groups": ["engineering"],
        "roles": ["auditor"],
    }
    provider.id_token_overrides = {}
    provider.overage = False
    return _entra_peer(provider)


async def configure(api: Api, tenant: TenantHandle, idp: Peer, **extra: Any) -> None:
    idp.prepare(tenant)
    body = {
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        **idp.settings,
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
    api: Api, tenant: TenantHandle, idp: Peer, return_to: str = "/v1/me"
) -> httpx.Response:
    login = await api.client.get(f"/auth/{tenant.slug}/oidc/login", params={"return_to": return_to})
    assert login.status_code == 302, login.text
    state_cookie = cookie_value(login, "bulwark_oidc")
    # The browser follows the redirect to the IdP, which sends it back with a code.
    async with httpx.AsyncClient() as browser:
        at_idp = await browser.get(login.headers["location"])
    assert at_idp.status_code == 302, at_idp.text
    back = urlparse(at_idp.headers["location"])
    query = parse_qs(back.query)
    return await api.client.get(
        back.path,
        params={"code": query["code"][0], "state": query["state"][0]},
        headers={"Cookie": f"bulwark_oidc={state_cookie}"},
    )


async def login_events(api: Api, tenant: TenantHandle) -> list[dict[str, Any]]:
    response = await api.client.get(
        "/v1/audit/events", params={"action": "sso.login"}, headers=tenant.admin
    )
    return list(response.json()["items"])


async def map_roles(api: Api, tenant: TenantHandle) -> None:
    response = await api.client.put(
        "/v1/admin/role-mappings",
        headers=tenant.admin,
        json={
            "default_role": "member",
            "mappings": [
                {"idp_group": "engineering", "role": "compliance_officer"},
                {"idp_group": "auditor", "role": "tenant_admin"},
            ],
        },
    )
    assert response.status_code == 200, response.text


async def test_code_flow_with_pkce_signs_in_and_provisions(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    await map_roles(api, tenant)

    login = await api.client.get(f"/auth/{tenant.slug}/oidc/login", follow_redirects=False)
    assert login.status_code == 302, login.text
    location = urlparse(login.headers["location"])
    query = parse_qs(location.query)
    assert login.headers["location"].startswith(idp.issuer.rsplit("/v2.0", 1)[0])
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"] and query["code_challenge"]
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/auth/{tenant.slug}/oidc/callback"]
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
    # The default role, the group's role and the role claim's role (Keycloak's realm roles
    # under realm_access.roles, Entra's app roles under roles).
    assert me["roles"] == ["compliance_officer", "member", "tenant_admin"]
    events = await login_events(api, tenant)
    assert [(e["outcome"], e["detail"]["reason"]) for e in events] == [("success", "ok")]
    assert "groups_overage" not in events[0]["detail"]

    # Signing in again links to the same user, and updates the name the IdP now sends.
    idp.next_user["name"] = "Renamed"
    again = cookie_value(await sign_in(api, tenant, idp), "bulwark_session")
    me2 = (await api.client.get("/v1/me", headers=bearer(again))).json()
    assert me2["user"]["id"] == me["user"]["id"]
    assert me2["user"]["display_name"] == "Renamed"


async def test_entra_group_overage_is_audited_and_grants_no_group_role(
    api: Api, entra_shaped: EntraProvider
) -> None:
    idp = _entra_peer(entra_shaped)
    entra_shaped.next_user = {
        "sub": f"pairwise-{uuid.uuid4().hex[:8]}",
        "email": f"many-groups-{uuid.uuid4().hex[:6]}@contoso.example",
        "name": "Many Groups",
        "groups": ["engineering"],
        "roles": [],
    }
    entra_shaped.overage = True
    try:
        tenant = await api.new_tenant()
        await configure(api, tenant, idp)
        await map_roles(api, tenant)
        done = await sign_in(api, tenant, idp)
    finally:
        entra_shaped.overage = False
    assert done.status_code == 303, done.text
    me = await api.client.get("/v1/me", headers=bearer(cookie_value(done, "bulwark_session")))
    assert me.json()["roles"] == ["member"]  # no group came, so no group-mapped role
    [event] = await login_events(api, tenant)
    assert event["outcome"] == "success"
    assert event["detail"]["groups_overage"] is True


async def test_open_redirects_are_refused(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:x"):
        done = await sign_in(api, tenant, idp, return_to=hostile)
        assert done.headers["location"] == "/v1/me"


async def test_callback_failures_are_401_and_audited(api: Api, idp: Peer) -> None:
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

    idp.id_token_overrides.update(nonce="replayed-nonce")
    assert assert_problem(await sign_in(api, tenant, idp), 401)["reason"] == "wrong_nonce"
    idp.id_token_overrides.clear()
    idp.id_token_overrides.update(aud="someone-else", azp="someone-else")
    assert assert_problem(await sign_in(api, tenant, idp), 401)["reason"] == "wrong_audience"
    idp.id_token_overrides.clear()

    events = await login_events(api, tenant)
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


async def test_idp_access_tokens_are_api_credentials(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    hint = {"X-Bulwark-Tenant": tenant.slug}
    for alg in idp.algorithms:
        claims = idp.bearer_claims(sub=f"api-{alg}", email=f"{alg.lower()}@idp.example")
        token = idp.sign(claims, alg=alg)
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
async def test_bad_bearer_tokens_are_refused(api: Api, idp: Peer, forge: str, reason: str) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    now = int(time.time())
    claims = idp.bearer_claims(sub="attacker", email="attacker@idp.example")
    token = {
        "none": lambda: idp.unsigned(claims),
        "hs256": lambda: idp.hs256_with_public_key(claims),
        "expired": lambda: idp.sign({**claims, "exp": now - 3600, "iat": now - 7200}),
        "future": lambda: idp.sign({**claims, "nbf": now + 3600}),
        "issuer": lambda: idp.sign({**claims, "iss": "http://127.0.0.1:9/realms/other"}),
        "audience": lambda: idp.sign({**claims, "aud": "other", "azp": "other"}),
        "tampered": lambda: _tamper(idp.sign(claims)),
        "unknown_kid": lambda: idp.unknown_kid(claims),
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


async def test_rotated_keys_are_fetched_on_unknown_kid(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    hint = {"X-Bulwark-Tenant": tenant.slug}
    claims = idp.bearer_claims(sub="rot", email="rot@idp.example")
    first = idp.sign(claims)
    assert (await api.client.get("/v1/me", headers={**bearer(first), **hint})).status_code == 200
    second = idp.rotate_and_sign(claims)  # the IdP publishes a new key and signs with it
    assert (await api.client.get("/v1/me", headers={**bearer(second), **hint})).status_code == 200


async def test_oidc_settings_keep_the_secret_sealed(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    assert_problem(
        await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin), 404, "oidc_not_configured"
    )
    # OIDC Discovery: no query, no fragment (the OpenAPI document's issuer pattern: 400).
    for body in (
        {"issuer": "https://idp.example/tenant?x=1", "client_id": "c"},
        {"issuer": "https://idp.example/tenant#f", "client_id": "c"},
    ):
        bad = await api.client.put("/v1/admin/sso/oidc", headers=tenant.admin, json=body)
        assert_problem(bad, 400, "invalid_input")
    bad = await api.client.put("/v1/admin/sso/oidc", headers=tenant.admin, json={"client_id": "c"})
    assert_problem(bad, 422, "invalid_issuer")
    await configure(api, tenant, idp)
    read = (await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin)).json()
    assert read["has_client_secret"] is True
    assert idp.client_secret not in str(read)
    assert read["issuer"] == idp.issuer
    assert read["claims"]["roles"] == idp.settings["claims"]["roles"]
    assert_problem(
        await api.client.get(f"/auth/no-such-tenant-{uuid.uuid4().hex[:6]}/oidc/login"),
        404,
        "tenant_not_found",
    )
    other = await api.new_tenant()
    assert_problem(
        await api.client.get(f"/auth/{other.slug}/oidc/login"), 404, "oidc_not_configured"
    )


async def test_a_keycloak_server_url_and_realm_are_still_accepted(
    api: Api, keycloak_shaped: OidcProvider
) -> None:
    tenant = await api.new_tenant()
    response = await api.client.put(
        "/v1/admin/sso/oidc",
        headers=tenant.admin,
        json={
            "server_url": keycloak_shaped.base_url,
            "realm": "bulwark-test",
            "client_id": keycloak_shaped.client_id,
            "client_secret": keycloak_shaped.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["issuer"] == keycloak_shaped.issuer


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


async def test_an_identity_cannot_take_over_anothers_account(api: Api, idp: Peer) -> None:
    tenant = await api.new_tenant()
    await configure(api, tenant, idp)
    first = await sign_in(api, tenant, idp)
    assert first.status_code == 303
    # Another subject at the IdP now asserts the same email: refused, not linked.
    idp.next_user["sub"] = f"impostor-{uuid.uuid4().hex[:6]}"
    refused = await sign_in(api, tenant, idp)
    assert_problem(refused, 401, "invalid_credentials")
    events = await login_events(api, tenant)
    assert [(e["outcome"], e["detail"]["reason"]) for e in events] == [
        ("success", "ok"),
        ("failure", "invalid_credentials"),
    ]


# The egress guard on the IdP's URLs -------------------------------------------------------------


async def test_an_issuer_at_a_refused_address_is_422_and_audited(api: Api) -> None:
    tenant = await api.new_tenant()
    for issuer, reason in (
        ("http://169.254.169.254/latest/meta-data", "link_local"),
        ("http://10.0.0.7/realms/x", "private"),
        ("http://[::ffff:169.254.169.254]/v2.0", "link_local"),
    ):
        refused = await api.client.put(
            "/v1/admin/sso/oidc",
            headers=tenant.admin,
            json={"issuer": issuer, "client_id": "c"},
        )
        assert assert_problem(refused, 422, "egress_refused")["reason"] == reason
    assert_problem(
        await api.client.get("/v1/admin/sso/oidc", headers=tenant.admin), 404, "oidc_not_configured"
    )
    events = await api.client.get(
        "/v1/audit/events", params={"action": "egress.refused"}, headers=tenant.admin
    )
    items = events.json()["items"]
    assert [(e["outcome"], e["detail"]["reason"]) for e in items] == [
        ("denied", "link_local"),
        ("denied", "private"),
        ("denied", "link_local"),
    ]
    assert {e["resource_type"] for e in items} == {"identity_provider"}


@pytest.fixture
def hostile_idp() -> Iterator[str]:
    """A provider whose discovery document sends Bulwark to the cloud metadata service, and
    whose other paths redirect there (never followed)."""
    with StaticHttp() as http:
        issuer = http.url("/tenant")
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": "http://169.254.169.254/latest/api/token",
            "jwks_uri": "http://169.254.169.254/latest/meta-data/keys",
        }
        http.answer(
            "/tenant/.well-known/openid-configuration",
            json.dumps(document),
            **{"Content-Type": "application/json"},
        )
        http.default = (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b"")
        yield issuer


async def test_a_discovery_document_cannot_lead_to_a_refused_address(
    api: Api, hostile_idp: str
) -> None:
    tenant = await api.new_tenant()
    configured = await api.client.put(
        "/v1/admin/sso/oidc",
        headers=tenant.admin,
        json={"issuer": hostile_idp, "client_id": "c", "client_secret": "s"},
    )
    assert configured.status_code == 200, configured.text
    token = EntraProvider().mint({"iss": hostile_idp, "sub": "x", "aud": "c"})
    me = await api.client.get("/v1/me", headers={**bearer(token), "X-Bulwark-Tenant": tenant.slug})
    assert_problem(me, 503, "idp_unavailable")
    assert me.headers["retry-after"]
    events = await api.client.get(
        "/v1/audit/events", params={"action": "egress.refused"}, headers=tenant.admin
    )
    assert [e["detail"]["reason"] for e in events.json()["items"]] == ["link_local"]
