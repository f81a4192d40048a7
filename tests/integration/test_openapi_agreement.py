"""Schema = behaviour: a request the OpenAPI document allows is accepted, and one it does not
allow is refused (400 or 422), for the constraints the document used to leave out (the keys and
values of maps, list items, the rules between fields, configured choices and limits).

Each case sends one request and checks the verdict of the published document (JSON Schema
2020-12, formats included) against the server's answer."""

from __future__ import annotations

import uuid
from typing import Any

import jsonschema
import pytest

from tests.support.http import assert_problem
from tests.support.tenants import Api, TenantHandle

Json = dict[str, Any]


class Document:
    """The OpenAPI document as served, with a validator for each request body and parameter."""

    def __init__(self, raw: Json) -> None:
        self.raw = raw

    def _validator(self, schema: Json) -> jsonschema.Draft202012Validator:
        # The document itself is the root its "#/components/..." references resolve against.
        return jsonschema.Draft202012Validator(
            {**self.raw, **schema}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def operation(self, method: str, path: str) -> Json:
        return dict(self.raw["paths"][path][method.lower()])

    def body_allows(self, method: str, path: str, body: Any) -> bool:
        content = self.operation(method, path)["requestBody"]["content"]
        schema = next(iter(content.values()))["schema"]
        return bool(self._validator(schema).is_valid(body))

    def parameter_allows(self, method: str, path: str, name: str, value: Any) -> bool:
        (parameter,) = [p for p in self.operation(method, path)["parameters"] if p["name"] == name]
        return bool(self._validator(parameter["schema"]).is_valid(value))

    def component(self, name: str) -> Json:
        return dict(self.raw["components"]["schemas"][name])


async def document(api: Api) -> Document:
    response = await api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    return Document(response.json())


async def agrees(
    api: Api,
    doc: Document,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    *,
    template: str | None = None,
) -> int:
    """Send ``body``; the server accepts it exactly when the document allows it. ``template``:
    the documented path when ``path`` has its parameters filled in."""
    allowed = doc.body_allows(method, template or path, body)
    response = await api.client.request(method, path, json=body, headers=headers)
    if allowed:
        assert response.status_code < 400, (body, response.text)
    else:
        assert response.status_code in (400, 422), (body, response.text)
    return int(response.status_code)


async def test_user_attributes_and_clearance(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    user = await api.new_user(tenant)
    path, template = f"/v1/admin/users/{user['id']}", "/v1/admin/users/{user_id}"
    body: Json
    for body in (
        {"attributes": {"department": ["finance", "legal"], "site.code": ["B-12"]}},
        {"attributes": {"department": []}},
        {"clearance": 3},
        {"clearance": 0},
        {"attributes": {"Bad Key": ["x"]}},
        {"attributes": {"team": ["has space"]}},
        {"attributes": {"team": [f"v{i}" for i in range(51)]}},
        {"attributes": {f"k{i}": ["v"] for i in range(21)}},
        {"clearance": 4},
        {"clearance": -1},
    ):
        await agrees(api, doc, "PATCH", path, body, tenant.admin, template=template)
    # What the document refuses, the server refused: nothing of it was stored.
    stored = (await api.client.get(path, headers=tenant.admin)).json()
    assert (stored["attributes"], stored["clearance"]) == ({}, 0)


async def test_document_metadata_and_acl_attributes(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for extra in (
        {"metadata": {"lang": "en", "team_2": "A-1"}},
        {"acl": {"visibility": "tenant", "attributes": {"region": ["eu", "us"]}}},
        {"metadata": {"Lang": "en"}},
        {"metadata": {"lang": "has space"}},
        {"acl": {"visibility": "tenant", "attributes": {"region": []}}},
        {"acl": {"attributes": {"Region": ["eu"]}}},
    ):
        body = {"title": "Doc", "text": f"text {uuid.uuid4()}", **extra}
        await agrees(api, doc, "POST", "/v1/documents", body, tenant.admin)


async def test_search_filter_keys(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for filters in ({"Lang_2": "en"}, {"lang": "anything at all"}, {"bad-key": "x"}, {"": "x"}):
        body = {"query": "travel", "filters": filters}
        await agrees(api, doc, "POST", "/v1/search", body, tenant.admin)


async def test_usage_takes_any_span_of_calendar_days(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for query, allowed in (
        ({"since": "2020-01-01", "until": "2026-06-30"}, True),
        ({"since": "2026-06-30", "until": "2026-01-01"}, True),
        ({"since": "0001-01-01"}, True),
        ({"until": "0000000000"}, False),
        ({"until": "2026-13-01"}, False),
        ({"since": "2026-02-30"}, False),
        ({"since": "0000-01-01"}, False),
    ):
        for name, value in query.items():
            if allowed:
                assert doc.parameter_allows("GET", "/v1/usage", name, value), query
        if not allowed:
            assert not all(doc.parameter_allows("GET", "/v1/usage", n, v) for n, v in query.items())
        response = await api.client.get("/v1/usage", params=query, headers=tenant.admin)
        if allowed:
            assert response.status_code == 200, (query, response.text)
        else:
            assert response.status_code in (400, 422), (query, response.text)
    empty = await api.client.get(
        "/v1/usage", params={"since": "2026-06-30", "until": "2026-01-01"}, headers=tenant.admin
    )
    assert empty.json()["items"] == [] and empty.json()["total_tokens"] == 0


async def test_model_policy_rules_between_fields(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for body in (
        {"allowed": ["small", "mid"], "pinned": "mid", "fallback": "small"},
        {"forbidden": ["frontier"], "fallback": "mid"},
        {"allowed": [], "forbidden": ["small", "mid"]},
        {"allowed": ["frontier"], "forbidden": ["frontier"]},
        {"forbidden": ["small", "mid", "frontier"]},
        {"allowed": ["small"], "pinned": "mid"},
        {"forbidden": ["mid"], "fallback": "mid"},
    ):
        await agrees(api, doc, "PUT", "/v1/admin/model-policy", body, tenant.admin)


async def test_byo_model_tiers_are_an_enum(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for tier, allowed in (("mid", True), ("medium", False)):
        assert doc.parameter_allows("DELETE", "/v1/admin/byo-models/{tier}", "tier", tier) is (
            allowed
        )
        response = await api.client.delete(f"/v1/admin/byo-models/{tier}", headers=tenant.admin)
        # A tier without a model of the tenant's own is a 404; a tier that is none, a 400.
        assert response.status_code == (404 if allowed else 400), response.text


async def test_batches_hold_the_configured_number_of_requests_of_named_models(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    limit = doc.component("BatchCreate")["properties"]["requests"]["maxItems"]
    models = doc.component("BatchRequestItem")["properties"]["model"]["enum"]
    assert "auto" in models and "small" in models and "byo-mid" in models
    # A tier's own model the tenant has not set: accepted, and each item fails at once when the
    # batch runs (no model is called).
    item = {"messages": [{"role": "user", "content": "hi"}], "model": "byo-frontier"}
    for body in (
        {"requests": [item] * limit},
        {"requests": [item] * (limit + 1)},
        {"requests": [{**item, "model": "no-such-model"}]},
    ):
        status = await agrees(api, doc, "POST", "/v1/gateway/batches", body, tenant.admin)
        if body["requests"][0].get("model") == "no-such-model":
            assert status == 422


async def test_a_model_nobody_configures_is_refused_before_any_answer(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    body = {"message": "What is the travel policy?", "model": "gpt-none"}
    assert not doc.body_allows("POST", "/v1/chat", body)
    assert_problem(
        await api.client.post("/v1/chat", json=body, headers=tenant.admin), 422, "unknown_model"
    )
    completion = {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-none"}
    assert not doc.body_allows("POST", "/v1/chat/completions", completion)
    assert_problem(
        await api.client.post("/v1/chat/completions", json=completion, headers=tenant.admin),
        422,
        "unknown_model",
    )


def _dlp(**fields: Any) -> Json:
    return {"entities": [{"type": "PERSON"}], **fields}


async def test_dlp_policy_items_and_actions(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for body in (
        _dlp(allow_list=["help@acme.example"], injection={"allowed_hosts": ["*.acme.example"]}),
        _dlp(tag_classification=3),
        _dlp(
            custom=[{"type": "PROJECT_CODE", "terms": ["Falcon"]}],
            entities=[{"type": "PROJECT_CODE", "ingest": "tag"}],
        ),
        _dlp(allow_list=[" \u00a0 "]),
        _dlp(allow_list=["x" * 101]),
        _dlp(injection={"allowed_hosts": [""]}),
        _dlp(injection={"allowed_hosts": ["has space.example"]}),
        _dlp(tag_classification=4),
        _dlp(entities=[{"type": "PERSON", "ingest": "pseudonymize"}]),
        _dlp(entities=[{"type": "PERSON", "outbound": "pseudonymize"}]),
        _dlp(custom=[{"type": "PERSON", "terms": ["x"]}]),
        _dlp(custom=[{"type": "CODE"}], entities=[{"type": "CODE"}]),
        _dlp(custom=[{"type": "CODE", "patterns": [""]}], entities=[{"type": "CODE"}]),
    ):
        await agrees(api, doc, "PUT", "/v1/admin/dlp", body, tenant.admin)


def _saml(**fields: Any) -> Json:
    certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    return {
        "idp_entity_id": "https://idp.example/entity",
        "sso_url": "https://idp.example/sso",
        "certificates": [certificate],
        **fields,
    }


async def test_saml_settings_rules(api: Api) -> None:
    """The certificate here never parses (422 saml_certificate_invalid, a business refusal):
    every body the document allows gets exactly that far."""
    tenant = await api.new_tenant()
    doc = await document(api)
    for body in (
        _saml(),
        _saml(want_assertions_signed=False, want_messages_signed=True),
        _saml(attributes={"email": ["mail", "urn:oid:0.9.2342.19200300.100.1.3"]}),
        _saml(want_assertions_signed=False, want_messages_signed=False),
        _saml(want_assertions_signed=False),
        _saml(attributes={"email": [""]}),
        _saml(attributes={"email": ["a\tb"]}),
        _saml(attributes={"email": ["x" * 257]}),
        _saml(sso_url="https://-/sso"),
        _saml(certificates=["x" * 20000]),
    ):
        allowed = doc.body_allows("PUT", "/v1/admin/sso/saml", body)
        response = await api.client.put("/v1/admin/sso/saml", json=body, headers=tenant.admin)
        if allowed:
            assert_problem(response, 422, "saml_certificate_invalid")
        else:
            assert response.status_code in (400, 422), (body, response.text)
            assert response.json()["code"] != "saml_certificate_invalid", body


async def test_saml_metadata_takes_exactly_one_source(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for body in (
        {},
        {"metadata_xml": "<x/>", "metadata_url": "https://idp.example/metadata"},
        {"metadata_xml": None, "metadata_url": None},
    ):
        assert not doc.body_allows("POST", "/v1/admin/sso/saml/metadata", body)
        response = await api.client.post(
            "/v1/admin/sso/saml/metadata", json=body, headers=tenant.admin
        )
        assert_problem(response, 422, "saml_config_invalid")
    assert doc.body_allows("POST", "/v1/admin/sso/saml/metadata", {"metadata_xml": "<x/>"})


async def test_oidc_names_its_provider(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    for body in (
        {"client_id": "bulwark"},
        {"client_id": "bulwark", "server_url": "https://kc.example"},
        {"client_id": "bulwark", "issuer": "https://idp.example/?tenant=1"},
        {"client_id": "bulwark", "issuer": "https://idp.example/#frag"},
    ):
        await agrees(api, doc, "PUT", "/v1/admin/sso/oidc", body, tenant.admin)
    for body in (
        {"client_id": "bulwark", "issuer": "https://idp.example/realms/acme"},
        {"client_id": "bulwark", "server_url": "https://kc.example", "realm": "acme"},
        # A host no URL parser takes: nothing to connect to (once a 500).
        {"client_id": "bulwark", "issuer": "https://T[r"},
        {"client_id": "bulwark", "issuer": "https://[zz]/realms/acme"},
    ):
        # Allowed; the egress guard then decides (no network here: 422 egress_refused).
        assert doc.body_allows("PUT", "/v1/admin/sso/oidc", body)
        response = await api.client.put("/v1/admin/sso/oidc", json=body, headers=tenant.admin)
        assert response.status_code == 200 or response.json()["code"] == "egress_refused"


async def test_subject_access_requests_name_exactly_one_identifier(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    officer = await api.new_user(tenant, roles=["compliance_officer"])
    key = (await api.new_key(tenant, officer["id"]))["key"]
    headers = {"Authorization": f"Bearer {key}"}
    someone = str(uuid.uuid4())
    for subject, allowed in (
        ({"user_id": someone}, True),
        ({"email": "nobody@example.com", "user_id": None}, True),
        ({}, False),
        ({"user_id": someone, "email": "nobody@example.com"}, False),
        ({"user_id": None, "email": None, "external_id": None}, False),
    ):
        body = {"subject": subject, "kind": "access"}
        assert doc.body_allows("POST", "/v1/sar", body) is allowed, subject
        response = await api.client.post("/v1/sar", json=body, headers=headers)
        if allowed:  # nobody by that name in this tenant
            assert_problem(response, 404, "subject_not_found")
        else:
            assert_problem(response, 422)


async def test_kms_choices_are_the_deployments(api: Api) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    update = doc.component("KmsConfigUpdate")["properties"]
    assert update["provider"]["enum"] == ["local"]
    assert tenant.region in update["region"]["enum"]
    body = {"provider": "aws-kms", "key_id": "alias/x", "region": tenant.region}
    assert not doc.body_allows("PUT", "/v1/admin/kms", body)
    assert_problem(
        await api.client.put("/v1/admin/kms", json=body, headers=tenant.admin),
        422,
        "kms_provider_unsupported",
    )


async def test_upload_form_acl_is_a_json_object_or_null(api: Api, tmp_path: Any) -> None:
    tenant = await api.new_tenant()
    doc = await document(api)
    form = doc.component("UploadForm")["properties"]
    assert form["acl"]["oneOf"] == [{"$ref": "#/components/schemas/AclSpec"}, {"type": "null"}]
    for acl in ("null", '{"visibility": "tenant"}'):
        response = await api.client.post(
            "/v1/documents/upload",
            files={"file": ("a.txt", f"text {uuid.uuid4()}".encode(), "text/plain")},
            data={"acl": acl},
            headers=tenant.admin,
        )
        assert response.status_code == 202, response.text


async def test_logout_is_documented_for_sessions_only(api: Api, tenant: TenantHandle) -> None:
    doc = await document(api)
    schemes = doc.raw["components"]["securitySchemes"]
    assert schemes["SessionCookie"] == {
        "type": "apiKey",
        "name": "bulwark_session",
        "in": "cookie",
        "description": "The Bulwark session a browser sign-in opened.",
    }
    assert doc.operation("POST", "/auth/logout")["security"] == [
        {"SessionCookie": []},
        {"SessionToken": []},
    ]
    assert_problem(
        await api.client.post("/auth/logout", headers=tenant.admin), 422, "not_a_session"
    )


@pytest.fixture
async def tenant(api: Api) -> TenantHandle:
    return await api.new_tenant()
