"""SAML metadata import (``POST /v1/admin/sso/saml/metadata``) end to end: the metadata Entra ID
and Okta export, uploaded or published by a real HTTP server on 127.0.0.1 (which the suite's
deployment allow-lists, as an operator would a private IdP), then a real signed login with the
imported settings. Refused documents and destinations change nothing and say why."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lxml import etree, html

from app.runtime import Runtime
from audit.services import AuditLog
from auth.saml import SamlConfigService, SamlEndpoints
from auth.saml_controllers import TOOLKIT
from auth.saml_metadata import SamlMetadataService
from kernel.egress import EgressPolicy, EgressRefused
from tests.saml_idp import (
    NS,
    Assertion,
    MetadataServer,
    Sp,
    TestIdp,
    certificate_body,
    entra_idp,
    entra_metadata,
    new_key_and_cert,
    okta_idp,
    okta_metadata,
    post_acs,
    session_cookie,
    set_cookies,
    start_login,
)
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle, context_of

METADATA = "/v1/admin/sso/saml/metadata"
REFRESH = "/v1/admin/sso/saml/metadata/refresh"
CONFIG = "/v1/admin/sso/saml"
ENTRA_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


@pytest.fixture(autouse=True)
async def _no_cookies_left(api: Api) -> AsyncIterator[None]:
    api.client.cookies.clear()
    yield
    api.client.cookies.clear()


async def import_metadata(api: Api, tenant: TenantHandle, **body: Any) -> dict[str, Any]:
    response = await api.client.post(METADATA, json=body, headers=tenant.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def read_config(api: Api, tenant: TenantHandle) -> Any:
    return (await api.client.get(CONFIG, headers=tenant.admin)).json()


def sp_of(tenant: TenantHandle, config: dict[str, Any]) -> Sp:
    sp = config["service_provider"]
    return Sp(tenant.slug, sp["entity_id"], sp["acs_url"])


async def sign_in(
    api: Api,
    tenant: TenantHandle,
    idp: TestIdp,
    sp: Sp,
    assertion: Assertion,
    **signing: Any,
) -> dict[str, Any]:
    """A whole SAML login (HTTP-Redirect binding) signed by ``idp``: /v1/me after it."""
    login = await start_login(api, tenant.slug)
    assert login.response.headers["location"].startswith(idp.sso_url + "?SAMLRequest=")
    assert login.authn_request.get("Destination") == idp.sso_url
    acs = await post_acs(
        api,
        tenant.slug,
        idp.encoded(sp, login.request_id, assertion, **signing),
        state=login.state_cookie,
    )
    assert acs.status_code == 303, acs.text
    me = await api.client.get("/v1/me", headers=session_cookie(acs))
    assert me.status_code == 200, me.text
    return dict(me.json())


async def configured_events(api: Api, tenant: TenantHandle, action: str) -> list[dict[str, Any]]:
    page = await api.client.get(
        "/v1/audit/events", params={"action": action, "limit": 500}, headers=tenant.admin
    )
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


# The two shapes ---------------------------------------------------------------------------------
async def test_entra_id_metadata_uploaded_configures_a_working_login(api: Api) -> None:
    tenant = await api.new_tenant()
    idp = entra_idp()
    next_key, next_cert = new_key_and_cert("Entra ID next signing key")
    config = await import_metadata(api, tenant, metadata_xml=entra_metadata(idp, next_cert))
    assert config["idp_entity_id"] == idp.entity_id
    assert (config["sso_url"], config["sso_binding"]) == (idp.sso_url, "HTTP-Redirect")
    # Both signing certificates of the rollover are trusted.
    assert [c["pem"] for c in config["certificates"]] == [idp.cert_pem, next_cert]
    assert config["metadata_url"] is None
    # A first configuration gets the SP-side defaults: signed assertions, enabled.
    assert (config["enabled"], config["want_assertions_signed"]) == (True, True)
    assert ENTRA_CLAIMS + "/emailaddress" in config["attributes"]["email"]
    assert await read_config(api, tenant) == config
    events = await configured_events(api, tenant, "sso.configured")
    assert [e["detail"]["source"] for e in events] == ["metadata_xml"]
    assert events[0]["detail"]["certificates"] == [
        c["sha256_fingerprint"] for c in config["certificates"]
    ]

    sp = sp_of(tenant, config)
    oid = f"entra-oid-{uuid.uuid4().hex[:8]}"

    def ada() -> Assertion:
        return Assertion(
            name_id=oid,
            attributes={
                f"{ENTRA_CLAIMS}/emailaddress": ["Ada@Contoso.example"],
                f"{ENTRA_CLAIMS}/givenname": ["Ada"],
                f"{ENTRA_CLAIMS}/surname": ["Lovelace"],
            },
        )

    me = await sign_in(api, tenant, idp, sp, ada())
    assert (me["tenant"]["id"], me["user"]["email"]) == (tenant.id, "ada@contoso.example")
    assert me["user"]["display_name"] == "Ada Lovelace"
    # After Entra switches to the next key, its responses are still accepted.
    again = await sign_in(api, tenant, idp, sp, ada(), key_pem=next_key, cert_pem=next_cert)
    assert again["user"]["id"] == me["user"]["id"]


async def test_okta_metadata_by_url_keeps_the_sp_settings_and_logs_in(api: Api) -> None:
    tenant = await api.new_tenant()
    # Configured by hand before: another IdP, and SP-side choices the import must keep.
    old = TestIdp()
    manual = old.config(
        attributes={"email": ["mail"], "groups": ["memberOf"]},
        want_messages_signed=True,
    )
    saved = await api.client.put(CONFIG, json=manual, headers=tenant.admin)
    assert saved.status_code == 200, saved.text
    before = saved.json()

    idp = okta_idp()
    with MetadataServer() as server:
        server.serve(okta_metadata(idp))
        url = server.url(f"/app/{idp.entity_id.rsplit('/', 1)[1]}/sso/saml/metadata")
        config = await import_metadata(api, tenant, metadata_url=url)
        assert len(server.requests) == 1
        path, accept = server.requests[0]
        assert path.endswith("/sso/saml/metadata")
        assert "application/samlmetadata+xml" in accept
    assert config["idp_entity_id"] == idp.entity_id
    assert (config["sso_url"], config["sso_binding"]) == (idp.sso_url, "HTTP-Redirect")
    assert [c["pem"] for c in config["certificates"]] == [idp.cert_pem]
    assert config["metadata_url"] == url
    for kept in ("attributes", "want_assertions_signed", "want_messages_signed", "enabled"):
        assert config[kept] == before[kept], kept
    assert config["service_provider"] == before["service_provider"]
    sources = [
        e["detail"]["source"] for e in await configured_events(api, tenant, "sso.configured")
    ]
    assert sorted(sources) == ["metadata_url", "settings"]
    assert url not in str(await configured_events(api, tenant, "sso.configured"))

    sp = sp_of(tenant, config)

    def grace() -> Assertion:
        return Assertion(name_id="00u1okta", attributes={"mail": ["grace@acme.example"]})

    # want_messages_signed was kept: the Response itself must be signed.
    login = await start_login(api, tenant.slug)
    unsigned_message = await post_acs(
        api, tenant.slug, idp.encoded(sp, login.request_id, grace()), state=login.state_cookie
    )
    assert_problem(unsigned_message, 401, "saml_invalid_signature")
    me = await sign_in(api, tenant, idp, sp, grace(), sign_response=True)
    assert me["user"]["email"] == "grace@acme.example"
    # The key of the IdP configured before is no longer trusted.
    login = await start_login(api, tenant.slug)
    old_key = {"key_pem": old.key_pem, "cert_pem": old.cert_pem}
    foreign = idp.encoded(sp, login.request_id, grace(), sign_response=True, **old_key)
    assert_problem(
        await post_acs(api, tenant.slug, foreign, state=login.state_cookie),
        401,
        "saml_invalid_signature",
    )


async def test_refresh_follows_a_key_rollover_and_a_failed_fetch_changes_nothing(
    api: Api,
) -> None:
    tenant = await api.new_tenant()
    assert_problem(await api.client.post(REFRESH, headers=tenant.admin), 404, "saml_not_configured")
    idp = okta_idp()
    next_key, next_cert = new_key_and_cert("Okta next key")
    with MetadataServer() as server:
        server.serve(okta_metadata(idp))
        first = await import_metadata(api, tenant, metadata_url=server.url())
        assert [c["pem"] for c in first["certificates"]] == [idp.cert_pem]

        # The IdP publishes its next key: a refresh reads the stored URL again.
        server.serve(okta_metadata(idp, certificates=[next_cert]))
        refreshed = await api.client.post(REFRESH, headers=tenant.admin)
        assert refreshed.status_code == 200, refreshed.text
        assert [c["pem"] for c in refreshed.json()["certificates"]] == [idp.cert_pem, next_cert]
        assert refreshed.json()["metadata_url"] == server.url()
        assert len(server.requests) == 2
        current = await read_config(api, tenant)

        # The metadata endpoint fails: 503 with Retry-After, the settings as they were.
        for status, reason in ((500, "status_500"), (404, "status_404")):
            server.serve("<html>error</html>", status=status, **{"Content-Type": "text/html"})
            failed = assert_problem(
                await api.client.post(REFRESH, headers=tenant.admin),
                503,
                "saml_metadata_unavailable",
            )
            assert failed["reason"] == reason
        # A redirect is not followed (here, towards the cloud metadata address).
        server.serve("", status=302, Location="http://169.254.169.254/latest/meta-data/")
        redirected = await api.client.post(REFRESH, headers=tenant.admin)
        assert assert_problem(redirected, 503, "saml_metadata_unavailable")["reason"] == "redirect"
        assert redirected.headers["retry-after"]
        # A document that is no longer usable is a 422, and changes nothing either.
        server.serve(okta_metadata(idp).replace("IDPSSODescriptor", "SPSSODescriptor"))
        assert_problem(await api.client.post(REFRESH, headers=tenant.admin), 422)
        server.serve(okta_metadata(okta_idp()))  # another IdP at the same URL
        assert_problem(
            await api.client.post(REFRESH, headers=tenant.admin),
            422,
            "saml_metadata_unknown_entity_id",
        )
        padded = okta_metadata(idp).replace("<md:", " " * (1 << 20) + "<md:", 1)  # > 1 MiB
        server.serve(padded)
        assert_problem(
            await api.client.post(REFRESH, headers=tenant.admin), 422, "saml_metadata_too_large"
        )
    # The server is gone: connection refused.
    gone = await api.client.post(REFRESH, headers=tenant.admin)
    assert assert_problem(gone, 503, "saml_metadata_unavailable")["reason"] == "connect"
    assert await read_config(api, tenant) == current

    # The rolled-over key signs logins.
    sp = sp_of(tenant, current)
    person = Assertion(attributes={"email": ["lin@acme.example"]})
    me = await sign_in(api, tenant, idp, sp, person, key_pem=next_key, cert_pem=next_cert)
    assert me["user"]["email"] == "lin@acme.example"

    # Settings typed by hand drop the URL: nothing to refresh.
    saved = await api.client.put(CONFIG, json=idp.config(), headers=tenant.admin)
    assert saved.json()["metadata_url"] is None
    assert_problem(
        await api.client.post(REFRESH, headers=tenant.admin), 409, "saml_metadata_url_missing"
    )


async def test_an_idp_that_offers_only_http_post_gets_the_request_posted(api: Api) -> None:
    tenant = await api.new_tenant()
    idp = okta_idp()
    post_only = okta_metadata(idp).replace(
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"',
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP"',
    )
    config = await import_metadata(api, tenant, metadata_xml=post_only)
    assert (config["sso_url"], config["sso_binding"]) == (idp.sso_url, "HTTP-POST")

    page = await api.client.get(
        f"/auth/{tenant.slug}/saml/login", params={"return_to": "/v1/me?x=<y>"}
    )
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    okta_origin = idp.sso_url.split("/app/")[0]
    assert f"form-action {okta_origin};" in policy and "default-src 'none'" in policy
    form = html.fromstring(page.text).forms[0]
    assert (form.method, form.action) == ("POST", idp.sso_url)
    fields = dict(form.form_values())
    assert fields["RelayState"] == "/v1/me?x=<y>"  # escaped in the page, intact in the form
    request = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))  # not deflated
    assert request.tag == f"{{{NS['samlp']}}}AuthnRequest"
    assert request.get("Destination") == idp.sso_url
    state = set_cookies(page)["bulwark_saml_state"]["value"]

    sp = sp_of(tenant, config)
    person = Assertion(attributes={"email": ["post@acme.example"]})
    acs = await post_acs(
        api,
        tenant.slug,
        idp.encoded(sp, request.get("ID"), person),
        state=state,
        relay_state=fields["RelayState"],
    )
    assert acs.status_code == 303, acs.text
    me = await api.client.get("/v1/me", headers=session_cookie(acs))
    assert me.json()["user"]["email"] == "post@acme.example"


# Refusals ---------------------------------------------------------------------------------------
async def test_unusable_metadata_is_refused_with_a_code_and_changes_nothing(api: Api) -> None:
    tenant = await api.new_tenant()
    idp = okta_idp()
    await import_metadata(api, tenant, metadata_xml=okta_metadata(idp))
    before = await read_config(api, tenant)
    good = okta_metadata(idp)
    _, weak_cert = new_key_and_cert("Too weak", key_size=1024)
    other = okta_idp()
    aggregate = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
        + _root(good)
        + _root(okta_metadata(other))
        + "</md:EntitiesDescriptor>"
    )
    refused: list[tuple[dict[str, Any], int, str]] = [
        ({"metadata_xml": "this is not XML"}, 422, "saml_metadata_malformed"),
        ({"metadata_xml": good[:-40]}, 422, "saml_metadata_malformed"),
        (
            {"metadata_xml": good.replace("IDPSSODescriptor", "SPSSODescriptor")},
            422,
            "saml_metadata_no_idp",
        ),
        (
            {
                "metadata_xml": good.replace("bindings:HTTP-POST", "bindings:SOAP").replace(
                    "bindings:HTTP-Redirect", "bindings:HTTP-Artifact"
                )
            },
            422,
            "saml_metadata_no_sso_binding",
        ),
        (
            {"metadata_xml": good.replace('use="signing"', 'use="encryption"')},
            422,
            "saml_metadata_no_signing_certificate",
        ),
        (
            {"metadata_xml": good.replace('"false"', '"true"')},  # WantAuthnRequestsSigned
            422,
            "saml_metadata_unsupported",
        ),
        (
            {"metadata_xml": good.replace(idp.sso_url, idp.sso_url + "?a=1&amp;b=2")},
            422,
            "saml_metadata_unsupported",
        ),
        (
            {
                "metadata_xml": good.replace(
                    certificate_body(idp.cert_pem), certificate_body(weak_cert)
                )
            },
            422,
            "saml_certificate_invalid",
        ),
        ({"metadata_xml": aggregate}, 422, "saml_metadata_entity_id_required"),
        (
            {"metadata_xml": aggregate, "entity_id": "http://www.okta.com/unknown"},
            422,
            "saml_metadata_unknown_entity_id",
        ),
        ({}, 422, "saml_config_invalid"),
        (
            {"metadata_xml": good, "metadata_url": "https://idp.example/md"},
            422,
            "saml_config_invalid",
        ),
        ({"metadata_url": "ftp://idp.example/metadata.xml"}, 400, ""),
        ({"metadata_xml": good, "surprise": 1}, 400, ""),
    ]
    for body, status, code in refused:
        problem = assert_problem(
            await api.client.post(METADATA, json=body, headers=tenant.admin), status, code or None
        )
        if code == "saml_metadata_entity_id_required":
            assert problem["entity_ids"] == [idp.entity_id, other.entity_id]
    assert await read_config(api, tenant) == before

    # Named, the second IdP of the aggregate is imported.
    chosen = await import_metadata(api, tenant, metadata_xml=aggregate, entity_id=other.entity_id)
    assert chosen["idp_entity_id"] == other.entity_id

    member = await api.new_user(tenant)
    key = bearer((await api.new_key(tenant, member["id"]))["key"])
    assert_problem(await api.client.post(METADATA, json={"metadata_xml": good}, headers=key), 403)
    assert_problem(await api.client.post(REFRESH, headers=key), 403)


async def test_xml_attacks_in_metadata_fetch_and_expand_nothing(api: Api) -> None:
    """DTDs are refused before anything in them is used: no external entity or DTD is
    fetched (the server sees only the metadata request itself), none is expanded."""
    tenant = await api.new_tenant()
    idp = okta_idp()
    body = _root(okta_metadata(idp))
    with MetadataServer() as attacker, MetadataServer() as server:
        attacker.serve("<!ENTITY leak 'leaked'>")
        laughs = '<!ENTITY l0 "lol">' + "".join(
            f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
        )
        documents = [
            f"<!DOCTYPE md:EntityDescriptor [{laughs}]>" + body.replace("WantAuthn", "a='&l9;' W"),
            '<!DOCTYPE md:EntityDescriptor [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + body.replace(UNSPECIFIED, "&x;"),
            f'<!DOCTYPE md:EntityDescriptor [<!ENTITY x SYSTEM "{attacker.url("/xxe")}">]>'
            + body.replace(UNSPECIFIED, "&x;"),
            f'<!DOCTYPE md:EntityDescriptor SYSTEM "{attacker.url("/evil.dtd")}">' + body,
            f'<!DOCTYPE md:EntityDescriptor [<!ENTITY % p SYSTEM "{attacker.url("/p")}"> %p;]>'
            + body,
        ]
        for document in documents:
            uploaded = await api.client.post(
                METADATA, json={"metadata_xml": document}, headers=tenant.admin
            )
            assert_problem(uploaded, 422, "saml_metadata_malformed")
            assert "root:" not in uploaded.text
            server.serve(document)
            fetched = await api.client.post(
                METADATA, json={"metadata_url": server.url()}, headers=tenant.admin
            )
            assert_problem(fetched, 422, "saml_metadata_malformed")
        assert attacker.requests == []
        assert len(server.requests) == len(documents)
    assert_problem(await api.client.get(CONFIG, headers=tenant.admin), 404, "saml_not_configured")


async def test_metadata_urls_that_lead_inside_are_refused_and_audited(api: Api) -> None:
    """The deployment allow-lists 127.0.0.0/8 only: the cloud metadata address, private
    networks and IPv6 loopback are refused before any connection, each with an audit event."""
    tenant = await api.new_tenant()
    refused = {
        "http://169.254.169.254/latest/meta-data/": "link_local",
        "https://0xa9.0xfe.0xa9.0xfe/metadata": "link_local",
        "https://10.0.0.5/federationmetadata.xml": "private",
        "https://[::1]:8443/metadata": "loopback",
        "https://[::ffff:169.254.169.254]/metadata": "link_local",
        "https://admin:pw@idp.example.com/metadata": "credentials_in_url",
    }
    for url, reason in refused.items():
        response = await api.client.post(METADATA, json={"metadata_url": url}, headers=tenant.admin)
        assert assert_problem(response, 422, "egress_refused")["reason"] == reason, url
    assert_problem(await api.client.get(CONFIG, headers=tenant.admin), 404, "saml_not_configured")
    events = await configured_events(api, tenant, "egress.refused")
    assert len(events) == len(refused)
    assert {e["outcome"] for e in events} == {"denied"}
    assert {e["resource_type"] for e in events} == {"identity_provider"}
    assert sorted(e["detail"]["reason"] for e in events) == sorted(refused.values())
    assert {e["detail"]["kind"] for e in events} == {"saml"}
    assert "169.254.169.254" in {e["detail"]["host"] for e in events}
    assert "meta-data" not in str(events)  # hosts only, never paths


async def test_without_the_allow_list_a_loopback_metadata_server_is_never_contacted(
    api: Api, runtime: Runtime
) -> None:
    """The same import under a policy with no allow-list (any deployment's default): the
    loopback server, however it is spelt, receives nothing."""
    tenant = await api.new_tenant()
    ctx = context_of(tenant)
    idp = okta_idp()
    with MetadataServer() as server:
        server.serve(okta_metadata(idp))
        port = server.url().split(":")[2].split("/")[0]
        for url, reason in (
            (server.url(), "loopback"),
            (f"http://localhost:{port}/metadata", "loopback"),
            (f"http://2130706433:{port}/metadata", "loopback"),
            (f"http://127.1:{port}/metadata", "loopback"),
        ):
            async with runtime.registry.tenant_transaction(ctx) as session:
                config = SamlConfigService(
                    session,
                    ctx,
                    AuditLog(session, ctx),
                    toolkit=TOOLKIT,
                    endpoints=SamlEndpoints.of("https://bulwark.example", tenant.slug),
                )
                service = SamlMetadataService(
                    config, egress=EgressPolicy.of(allow_http=True), registry=runtime.registry
                )
                with pytest.raises(EgressRefused) as refusal:
                    await service.import_metadata(
                        metadata_xml=None, metadata_url=url, entity_id=None
                    )
            assert refusal.value.reason == reason, url
        assert server.requests == []
    events = await configured_events(api, tenant, "egress.refused")
    assert len(events) == 4


def _root(document: str) -> str:
    """The document without its XML declaration and leading comment."""
    return document[document.index("<md:EntityDescriptor") :]
