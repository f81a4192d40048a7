"""SAML 2.0 SSO end to end, with real signed responses from an IdP the test builds."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree

from app.runtime import Runtime
from audit.services import AuditLog
from auth.repositories import UserRepository
from auth.sso import deactivate_user
from tests.saml_idp import (
    EMAIL_FORMAT,
    NS,
    Assertion,
    Sp,
    TestIdp,
    configure,
    encode,
    new_key_and_cert,
    post_acs,
    session_cookie,
    set_cookies,
    start_login,
    tamper_name_id,
    wrap_injected_assertion,
    wrap_moved_assertion,
    wrap_transplanted_signature,
)
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle, context_of


@pytest.fixture(scope="module")
def idp() -> TestIdp:
    return TestIdp()


@pytest.fixture(autouse=True)
async def _no_cookies_left(api: Api) -> AsyncIterator[None]:
    """The test client is shared by the session: leave no SSO cookie in its jar."""
    api.client.cookies.clear()
    yield
    api.client.cookies.clear()


def alice(**overrides: Any) -> Assertion:
    attributes = {
        "email": ["Alice@Example.com"],
        "firstName": ["Alice"],
        "lastName": ["Liddell"],
        "groups": ["bulwark-admins", "engineering"],
    }
    return Assertion(name_id="okta|alice", attributes=attributes, **overrides)


async def sso_events(api: Api, tenant: TenantHandle) -> list[dict[str, Any]]:
    page = await api.client.get(
        "/v1/audit/events", params={"action": "sso.login", "limit": 500}, headers=tenant.admin
    )
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def configured(api: Api, idp: TestIdp, **overrides: Any) -> tuple[TenantHandle, Sp]:
    tenant = await api.new_tenant()
    sp, _ = await configure(api, tenant, idp, **overrides)
    return tenant, sp


# Configuration ---------------------------------------------------------------------------------
async def test_admin_configures_saml_and_reads_it_back(api: Api, idp: TestIdp) -> None:
    tenant = await api.new_tenant()
    assert_problem(
        await api.client.get("/v1/admin/sso/saml", headers=tenant.admin), 404, "saml_not_configured"
    )
    _, other_cert = new_key_and_cert("Next IdP key")
    body = idp.config(
        certificates=[idp.cert_pem, other_cert, idp.cert_pem],  # a duplicate is kept once
        attributes={"email": ["mail"], "groups": ["memberOf"]},
    )
    saved = await api.client.put("/v1/admin/sso/saml", json=body, headers=tenant.admin)
    assert saved.status_code == 200, saved.text
    config = saved.json()
    assert config["idp_entity_id"] == idp.entity_id
    assert config["sso_url"] == idp.sso_url
    assert (config["enabled"], config["want_assertions_signed"]) == (True, True)
    assert config["want_messages_signed"] is False
    assert [c["pem"] for c in config["certificates"]] == [idp.cert_pem, other_cert]
    assert all(len(c["sha256_fingerprint"]) == 64 for c in config["certificates"])
    assert config["attributes"]["email"] == ["mail"]
    assert config["attributes"]["groups"] == ["memberOf"]
    assert "firstName" in config["attributes"]["given_name"]  # unmapped: the defaults
    base = f"http://127.0.0.1:8000/auth/{tenant.slug}/saml"
    assert config["service_provider"] == {
        "entity_id": f"{base}/metadata",
        "acs_url": f"{base}/acs",
        "metadata_url": f"{base}/metadata",
        "login_url": f"{base}/login",
    }
    read = await api.client.get("/v1/admin/sso/saml", headers=tenant.admin)
    assert read.json() == config

    events = (
        await api.client.get(
            "/v1/audit/events", params={"action": "sso.configured"}, headers=tenant.admin
        )
    ).json()["items"]
    assert len(events) == 1
    assert events[0]["resource_type"] == "identity_provider"
    assert events[0]["detail"] == {
        "kind": "saml",
        "source": "settings",
        "enabled": True,
        "want_assertions_signed": True,
        "want_messages_signed": False,
        "certificates": [c["sha256_fingerprint"] for c in config["certificates"]],
    }
    assert idp.entity_id not in str(events[0])


async def test_unsigned_or_invalid_configurations_are_refused(api: Api, idp: TestIdp) -> None:
    tenant = await api.new_tenant()

    async def put(**overrides: Any) -> Any:
        return await api.client.put(
            "/v1/admin/sso/saml", json=idp.config(**overrides), headers=tenant.admin
        )

    unsigned = await put(want_assertions_signed=False, want_messages_signed=False)
    assert_problem(unsigned, 422, "saml_unsigned_configuration")
    for certificates in (
        ["not a certificate"],
        ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
        [idp.key_pem],
        [idp.cert_pem + idp.cert_pem],
    ):
        assert_problem(await put(certificates=certificates), 422, "saml_certificate_invalid")
    assert_problem(await put(certificates=[""]), 422, "saml_certificate_invalid")
    # Lengths, attribute names and the SSO URL's shape are the OpenAPI document's (400).
    assert_problem(await put(certificates=["x" * 20000]), 400)
    assert_problem(await put(certificates=[]), 400)
    for names in ([""], ["a\tb"], ["x" * 257]):
        assert_problem(await put(attributes={"email": names}), 400)
    for sso_url in (
        "javascript:alert(1)",
        "https://idp.example/sso?a=1&b=2",
        "ftp://idp/x",
        "https://-/sso",
    ):
        assert_problem(await put(sso_url=sso_url), 400)
    assert_problem(await put(surprise=True), 400)
    # Nothing was stored.
    assert_problem(await api.client.get("/v1/admin/sso/saml", headers=tenant.admin), 404)

    member = await api.new_user(tenant)
    key = bearer((await api.new_key(tenant, member["id"]))["key"])
    assert_problem(await api.client.put("/v1/admin/sso/saml", json=idp.config(), headers=key), 403)
    assert_problem(await api.client.get("/v1/admin/sso/saml", headers=key), 403)


async def test_sp_metadata(api: Api, idp: TestIdp) -> None:
    tenant = await api.new_tenant()
    response = await api.client.get(f"/auth/{tenant.slug}/saml/metadata")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/samlmetadata+xml")
    root = etree.fromstring(response.content)
    base = f"http://127.0.0.1:8000/auth/{tenant.slug}/saml"
    assert root.get("entityID") == f"{base}/metadata"
    descriptor = root.find("md:SPSSODescriptor", NS)
    assert descriptor is not None
    assert descriptor.get("WantAssertionsSigned") == "true"
    assert descriptor.get("AuthnRequestsSigned") == "false"
    acs = descriptor.find("md:AssertionConsumerService", NS)
    assert acs is not None
    assert acs.get("Location") == f"{base}/acs"
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

    await configure(api, tenant, idp, want_assertions_signed=False, want_messages_signed=True)
    root = etree.fromstring((await api.client.get(f"/auth/{tenant.slug}/saml/metadata")).content)
    assert root.find("md:SPSSODescriptor", NS).get("WantAssertionsSigned") == "false"

    assert_problem(await api.client.get("/auth/no-such-tenant/saml/metadata"), 404)


# Login -----------------------------------------------------------------------------------------
async def test_login_redirects_to_the_idp_with_an_authn_request(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug, return_to="/v1/admin/users?limit=5")
    location = login.response.headers["location"]
    assert location.startswith(idp.sso_url + "?SAMLRequest=")
    assert login.relay_state == "/v1/admin/users?limit=5"
    request = login.authn_request
    assert request.tag == f"{{{NS['samlp']}}}AuthnRequest"
    assert request.get("Destination") == idp.sso_url
    assert request.get("AssertionConsumerServiceURL") == sp.acs_url
    assert request.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert request.findtext("saml:Issuer", namespaces=NS) == sp.entity_id
    state = set_cookies(login.response)["bulwark_saml_state"]
    assert state["path"] == f"/auth/{tenant.slug}/saml"
    assert state["max-age"] == "600"
    assert state["httponly"] and state["secure"]
    assert state["samesite"].lower() == "none"  # the IdP's POST back is cross-site

    for unsafe in ("https://evil.example/", "//evil.example", "/\\evil.example", "x"):
        assert (await start_login(api, tenant.slug, return_to=unsafe)).relay_state == "/v1/me"
    assert (await start_login(api, tenant.slug)).relay_state == "/v1/me"

    assert_problem(await api.client.get("/auth/no-such-tenant/saml/login"), 404, "tenant_not_found")
    bare = await api.new_tenant()
    assert_problem(
        await api.client.get(f"/auth/{bare.slug}/saml/login"), 404, "saml_not_configured"
    )


async def test_valid_login_provisions_the_user_and_opens_a_session(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    mappings = {
        "default_role": "member",
        "mappings": [{"idp_group": "bulwark-admins", "role": "tenant_admin"}],
    }
    saved = await api.client.put("/v1/admin/role-mappings", json=mappings, headers=tenant.admin)
    assert saved.status_code == 200, saved.text

    login = await start_login(api, tenant.slug, return_to="/v1/admin/users")
    acs = await post_acs(
        api,
        tenant.slug,
        idp.encoded(sp, login.request_id, alice()),
        state=login.state_cookie,
        relay_state=login.relay_state,
    )
    assert acs.status_code == 303, acs.text
    assert acs.headers["location"] == "/v1/admin/users"
    cookies = set_cookies(acs)
    session = cookies["bulwark_session"]
    assert session["value"].startswith("bws_")
    assert session["path"] == "/"
    assert session["max-age"] == str(8 * 3600)
    assert session["httponly"] and session["secure"]
    assert session["samesite"].lower() == "lax"
    assert cookies["bulwark_saml_state"]["value"] == ""  # the login state is spent

    me = await api.client.get("/v1/me", headers=session_cookie(acs))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["tenant"]["slug"] == tenant.slug
    assert body["user"]["email"] == "alice@example.com"
    assert body["user"]["display_name"] == "Alice Liddell"
    assert body["auth_method"] == "session"
    assert body["roles"] == ["member", "tenant_admin"]  # mapped from the IdP group
    groups = (await api.client.get("/v1/admin/groups", headers=tenant.admin)).json()["items"]
    by_name = {g["name"]: g["id"] for g in groups}
    assert sorted(body["group_ids"]) == sorted([by_name["bulwark-admins"], by_name["engineering"]])
    # The mapped admin role works on the admin API with the session cookie (a safe method).
    users = await api.client.get("/v1/admin/users", headers=session_cookie(acs))
    assert users.status_code == 200

    events = await sso_events(api, tenant)
    assert [(e["outcome"], e["detail"]["method"]) for e in events] == [("success", "saml")]
    assert events[0]["resource_id"] == body["user"]["id"]
    assert "alice" not in str(events[0]).lower()

    # A second login of the same subject finds the same user (and a fresh assertion id works).
    again = await start_login(api, tenant.slug)
    second = await post_acs(
        api,
        tenant.slug,
        idp.encoded(sp, again.request_id, alice()),
        state=again.state_cookie,
    )
    assert second.status_code == 303, second.text
    assert second.headers["location"] == "/v1/me"
    me2 = (await api.client.get("/v1/me", headers=session_cookie(second))).json()
    assert me2["user"]["id"] == body["user"]["id"]


async def test_refused_responses_are_401_with_a_code_and_an_audit_event(
    api: Api, idp: TestIdp
) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    rid, state = login.request_id, login.state_cookie
    valid = idp.response(sp, rid, alice())
    evil = idp.assertion_xml(
        sp,
        Assertion(name_id="okta|mallory", attributes={"email": [f"admin@{tenant.slug}.example"]}),
        rid,
    )
    mallory_key, mallory_cert = new_key_and_cert("Mallory")

    attempts: list[tuple[str, str, str]] = [
        ("valid", encode(valid), ""),
        ("replayed", encode(valid), "saml_replayed"),
        (
            "tampered",
            encode(tamper_name_id(idp.response(sp, rid, alice()), "okta|mallory")),
            "saml_invalid_signature",
        ),
        (
            "foreign key",
            idp.encoded(sp, rid, alice(), key_pem=mallory_key, cert_pem=mallory_cert),
            "saml_invalid_signature",
        ),
        ("unsigned", idp.encoded(sp, rid, alice(), sign_assertion=False), "saml_invalid_signature"),
        (
            "wrong audience",
            idp.encoded(sp, rid, alice(audience="https://other.example/sp")),
            "saml_wrong_audience",
        ),
        ("no audience", idp.encoded(sp, rid, alice(audience="")), "saml_wrong_audience"),
        (
            "wrong recipient",
            idp.encoded(sp, rid, alice(recipient="https://evil.example/acs")),
            "saml_wrong_destination",
        ),
        # python3-saml only checks that the ACS is a substring of the Recipient.
        (
            "recipient embedding the ACS",
            idp.encoded(sp, rid, alice(recipient=f"https://evil.example/?{sp.acs_url}")),
            "saml_wrong_destination",
        ),
        (
            "wrong destination",
            idp.encoded(sp, rid, alice(destination=sp.acs_url + "/x")),
            "saml_wrong_destination",
        ),
        (
            "wrong issuer",
            idp.encoded(sp, rid, alice(issuer="https://evil.example/idp")),
            "saml_wrong_issuer",
        ),
        (
            "expired",
            idp.encoded(
                sp,
                rid,
                alice(
                    not_on_or_after=timedelta(minutes=-10),
                    confirmation_not_on_or_after=timedelta(minutes=-10),
                ),
            ),
            "saml_expired",
        ),
        # Past the configured skew (60 s) though within python3-saml's own 300 s allowance.
        (
            "expired past skew",
            idp.encoded(sp, rid, alice(not_on_or_after=timedelta(seconds=-120))),
            "saml_expired",
        ),
        (
            "not yet valid",
            idp.encoded(sp, rid, alice(not_before=timedelta(minutes=3))),
            "saml_expired",
        ),
        (
            "confirmation expired",
            idp.encoded(sp, rid, alice(confirmation_not_on_or_after=timedelta(seconds=-5))),
            "saml_expired",
        ),
        (
            "other request",
            idp.encoded(sp, "_someone_elses_request", alice()),
            "saml_unsolicited_response",
        ),
        ("unsolicited", idp.encoded(sp, None, alice()), "saml_unsolicited_response"),
        (
            "response answering nothing",
            idp.encoded(sp, rid, alice(response_answers=False)),
            "saml_unsolicited_response",
        ),
        (
            "injected assertion",
            encode(wrap_injected_assertion(idp.response(sp, rid, alice()), evil)),
            "saml_invalid_response",
        ),
        (
            "moved assertion",
            encode(wrap_moved_assertion(idp.response(sp, rid, alice()), evil)),
            "saml_invalid_response",
        ),
        (
            "transplanted signature",
            encode(wrap_transplanted_signature(idp.response(sp, rid, alice()), evil)),
            "saml_invalid_signature",
        ),
        (
            "no email",
            idp.encoded(sp, rid, Assertion(attributes={"groups": ["x"]})),
            "saml_missing_attribute",
        ),
        (
            "email too long",
            idp.encoded(sp, rid, Assertion(attributes={"email": ["a" * 64 + "@" + "b" * 260]})),
            "saml_missing_attribute",
        ),
        ("not base64", "%%%not-base64%%%", "saml_invalid_response"),
        ("not xml", base64.b64encode(b"<nope").decode(), "saml_invalid_response"),
        ("a dtd", encode('<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'), "saml_invalid_response"),
    ]
    outcomes = []
    for name, saml_response, code in attempts:
        response = await post_acs(api, tenant.slug, saml_response, state=state)
        if not code:
            assert response.status_code == 303, (name, response.text)
            outcomes.append(("success", None))
            continue
        body = assert_problem(response, 401, code)
        assert "set-cookie" not in response.headers, name
        assert "Mallory" not in body["detail"] and "mallory" not in body["detail"]
        outcomes.append(("failure", code))

    # Only the first succeeded: every other attempt left a failure event with its code.
    events = await sso_events(api, tenant)
    assert [(e["outcome"], e["detail"].get("reason")) for e in events] == outcomes
    assert all(e["resource_id"] is None for e in events[1:])
    # Nobody but Alice (and the bootstrap admin) was provisioned.
    users = (await api.client.get("/v1/admin/users", headers=tenant.admin)).json()["items"]
    assert sorted(u["email"] for u in users) == sorted(
        ["alice@example.com", f"admin@{tenant.slug}.example"]
    )


async def test_within_the_clock_skew_is_accepted(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    late = alice(not_on_or_after=timedelta(seconds=-30), not_before=timedelta(seconds=30))
    response = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, late), state=login.state_cookie
    )
    assert response.status_code == 303, response.text


async def test_the_login_state_binds_the_browser_and_the_tenant(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    saml_response = idp.encoded(sp, login.request_id, alice())
    for state in (None, "garbage", login.state_cookie[:-2] + "xx"):
        assert_problem(
            await post_acs(api, tenant.slug, saml_response, state=state), 401, "saml_invalid_state"
        )
    # The untouched state still works: the refusals consumed nothing.
    ok = await post_acs(api, tenant.slug, saml_response, state=login.state_cookie)
    assert ok.status_code == 303, ok.text
    reasons = [e["detail"].get("reason") for e in await sso_events(api, tenant)]
    assert reasons == ["saml_invalid_state"] * 3 + [None]


async def test_relay_state_only_redirects_to_own_paths(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug, return_to="/v1/admin/users")
    cases = {
        "https://evil.example/phish": "/v1/me",
        "//evil.example/phish": "/v1/me",
        "/\\evil.example": "/v1/me",
        "\\\\evil.example": "/v1/me",
        "/\t/evil.example": "/v1/me",
        "javascript:alert(1)": "/v1/me",
        "http:evil.example": "/v1/me",
        "/v1/admin/groups?limit=1#top": "/v1/admin/groups?limit=1#top",
    }
    for relay_state, expected in cases.items():
        response = await post_acs(
            api,
            tenant.slug,
            idp.encoded(sp, login.request_id, alice()),
            state=login.state_cookie,
            relay_state=relay_state,
        )
        assert response.status_code == 303, (relay_state, response.text)
        assert response.headers["location"] == expected, relay_state
    # Without a RelayState the login's own (validated) return path applies.
    response = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, alice()), state=login.state_cookie
    )
    assert response.headers["location"] == "/v1/admin/users"


async def test_concurrent_replays_let_exactly_one_login_through(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    saml_response = idp.encoded(sp, login.request_id, alice())
    responses = await asyncio.gather(
        *(post_acs(api, tenant.slug, saml_response, state=login.state_cookie) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303, 401, 401, 401], [r.text for r in responses]
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "saml_replayed")


async def test_signed_messages_and_certificate_rollover(api: Api, idp: TestIdp) -> None:
    next_key, next_cert = new_key_and_cert("Next IdP key")
    tenant, sp = await configured(
        api,
        idp,
        certificates=[idp.cert_pem, next_cert],
        want_assertions_signed=False,
        want_messages_signed=True,
    )
    login = await start_login(api, tenant.slug)

    async def post(**kw: Any) -> Any:
        return await post_acs(
            api,
            tenant.slug,
            idp.encoded(sp, login.request_id, alice(), **kw),
            state=login.state_cookie,
        )

    # The response must be signed; an assertion-only signature is not enough here.
    assert_problem(await post(), 401, "saml_invalid_signature")
    assert (await post(sign_assertion=False, sign_response=True)).status_code == 303
    rolled = await post(
        sign_assertion=False, sign_response=True, key_pem=next_key, cert_pem=next_cert
    )
    assert rolled.status_code == 303, rolled.text
    assert (await post(sign_assertion=True, sign_response=True)).status_code == 303
    # A signed response wrapping an injected assertion is still refused.
    evil = idp.assertion_xml(sp, Assertion(name_id="okta|mallory"), login.request_id)
    wrapped = wrap_injected_assertion(
        idp.response(sp, login.request_id, alice(), sign_assertion=False), evil
    )
    assert_problem(
        await post_acs(api, tenant.slug, encode(idp.sign(wrapped)), state=login.state_cookie),
        401,
        "saml_invalid_response",
    )


async def test_email_from_the_name_id_and_session_limits(api: Api, idp: TestIdp) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    assertion = Assertion(
        name_id="Bob@Example.com",
        name_id_format=EMAIL_FORMAT,
        session_not_on_or_after=timedelta(minutes=30),
    )
    response = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, assertion), state=login.state_cookie
    )
    assert response.status_code == 303, response.text
    # The IdP's SessionNotOnOrAfter caps the session.
    assert 1700 < int(set_cookies(response)["bulwark_session"]["max-age"]) <= 1800
    me = (await api.client.get("/v1/me", headers=session_cookie(response))).json()
    assert me["user"]["email"] == "bob@example.com"
    assert me["user"]["display_name"] == "bob@example.com"
    assert me["roles"] == ["member"]

    # A long address is taken whole (never cut to fit a display field).
    long_email = "c" * 64 + "@" + "d" * 200 + ".example"
    carol = Assertion(attributes={"mail": [long_email]})
    response = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, carol), state=login.state_cookie
    )
    assert response.status_code == 303, response.text
    me = (await api.client.get("/v1/me", headers=session_cookie(response))).json()
    assert me["user"]["email"] == long_email


async def test_deactivated_users_and_disabled_configurations(
    api: Api, idp: TestIdp, runtime: Runtime
) -> None:
    tenant, sp = await configured(api, idp)
    login = await start_login(api, tenant.slug)
    first = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, alice()), state=login.state_cookie
    )
    assert first.status_code == 303
    user_id = (await api.client.get("/v1/me", headers=session_cookie(first))).json()["user"]["id"]

    # A deactivated user's sessions end, and SSO does not bring them back.
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        user = await UserRepository(session, ctx).get(uuid.UUID(user_id))
        assert user is not None
        await deactivate_user(session, ctx, user, AuditLog(session, ctx))
    assert_problem(await api.client.get("/v1/me", headers=session_cookie(first)), 401)
    refused = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, alice()), state=login.state_cookie
    )
    assert_problem(refused, 401, "invalid_credentials")
    assert (await sso_events(api, tenant))[-1]["detail"]["reason"] == "invalid_credentials"

    # SSO disabled: no login, no ACS (the configuration stays readable).
    await configure(api, tenant, idp, enabled=False)
    assert_problem(
        await post_acs(
            api, tenant.slug, idp.encoded(sp, login.request_id, alice()), state=login.state_cookie
        ),
        404,
        "saml_not_configured",
    )
    assert_problem(await api.client.get(f"/auth/{tenant.slug}/saml/login"), 404)
    assert (await api.client.get("/v1/admin/sso/saml", headers=tenant.admin)).json()[
        "enabled"
    ] is False


async def test_unknown_tenant_and_unconfigured_acs_are_404(api: Api, idp: TestIdp) -> None:
    for slug in ("no-such-tenant", "Upper", "a%00b", "x" * 300):
        assert_problem(await post_acs(api, slug, "eA==", state=None), 404, "tenant_not_found")
        assert_problem(await api.client.get(f"/auth/{slug}/saml/metadata"), 404)
    bare = await api.new_tenant()
    assert_problem(await post_acs(api, bare.slug, "eA==", state=None), 404, "saml_not_configured")
    assert_problem(await api.client.post(f"/auth/{bare.slug}/saml/acs", data={}), 400)
    assert await sso_events(api, bare) == []
