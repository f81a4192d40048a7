"""The Entra-shaped OpenID provider peer, tested on its own so that Bulwark's OIDC tests can trust
it: discovery, the code flow over real HTTP with PKCE S256 and client authentication, tokens that
verify against the JWKS it serves (checked with joserfc, independently of the peer), the group
overage marker, key rotation and the forged tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from tests.peers.entra_provider import EntraProvider

REDIRECT_URI = "http://127.0.0.1:8000/auth/acme/oidc/callback"


@pytest.fixture
def idp() -> Iterator[EntraProvider]:
    provider = EntraProvider()
    provider.register_redirect_uri(REDIRECT_URI)
    with provider:
        yield provider


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def discovery(idp: EntraProvider) -> dict[str, Any]:
    response = httpx.get(f"{idp.issuer}/.well-known/openid-configuration")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served_keys(idp: EntraProvider) -> KeySet:
    return KeySet.import_key_set(httpx.get(discovery(idp)["jwks_uri"]).json())


def authorize(idp: EntraProvider, **params: str) -> httpx.Response:
    query = {
        "client_id": idp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge_method": "S256",
        **params,
    }
    return httpx.get(discovery(idp)["authorization_endpoint"], params=query)


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlparse(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def exchange(
    idp: EntraProvider, code: str, verifier: str, *, post: bool = False, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **extra,
    }
    url = discovery(idp)["token_endpoint"]
    if post:  # client_secret_post
        form |= {"client_id": idp.client_id, "client_secret": idp.client_secret}
        return httpx.post(url, data=form)
    return httpx.post(url, data=form, auth=(idp.client_id, idp.client_secret))


def signed_in(idp: EntraProvider, *, post: bool = False) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = code_from(authorize(idp, code_challenge=challenge))
    response = exchange(idp, code, verifier, post=post)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(idp: EntraProvider, token: str, alg: str = "RS256") -> dict[str, Any]:
    decoded = jwt.decode(token, served_keys(idp), algorithms=[alg])
    return dict(decoded.claims)


def test_discovery_is_entra_shaped_and_valid(idp: EntraProvider) -> None:
    doc = discovery(idp)
    OpenIDProviderMetadata(doc).validate()  # Authlib's RFC 8414 / OIDC Discovery checks
    base = f"http://127.0.0.1:{idp.port}/{idp.tenant_guid}"
    assert idp.issuer == doc["issuer"] == f"{base}/v2.0"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert set(doc["id_token_signing_alg_values_supported"]) == {"RS256", "PS256", "ES256"}
    keys = httpx.get(doc["jwks_uri"]).json()["keys"]
    assert {k["kty"] for k in keys} == {"RSA", "EC"}
    assert all("alg" not in k and k["use"] == "sig" and "d" not in k for k in keys)
    assert f"/{idp.tenant_guid}/v2.0/.well-known/openid-configuration" in idp.requests
    assert idp.requests.count(f"/{idp.tenant_guid}/discovery/v2.0/keys") == 1
    other_tenant = doc["issuer"].replace(idp.tenant_guid, "00000000-0000-0000-0000-000000000000")
    assert httpx.get(f"{other_tenant}/.well-known/openid-configuration").status_code == 404


@pytest.mark.parametrize("post", [False, True], ids=["client_secret_basic", "client_secret_post"])
def test_code_flow_issues_tokens_that_verify_against_the_jwks(
    idp: EntraProvider, post: bool
) -> None:
    idp.next_user = {**idp.next_user, "roles": ["Bulwark.Admin"]}
    body = signed_in(idp, post=post)
    assert body["token_type"] == "Bearer"
    header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["kid"] == idp.current("RS256").kid
    claims = verified(idp, body["id_token"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer},
        aud={"essential": True, "value": idp.client_id},
        nonce={"essential": True, "value": "n-1"},
        tid={"essential": True, "value": idp.tenant_guid},
        ver={"essential": True, "value": "2.0"},
    ).validate(claims)
    for name in ("sub", "oid", "email", "name", "preferred_username", "groups", "roles"):
        assert claims[name] == idp.next_user[name]
    assert "at_hash" in claims
    access = verified(idp, body["access_token"])
    assert access["aud"] == idp.api_audience
    assert access["scp"] == "access_as_user"
    assert access["oid"] == idp.next_user["oid"]


def test_id_token_alg_can_be_changed(idp: EntraProvider) -> None:
    idp.id_token_alg = "ES256"
    body = signed_in(idp)
    decoded = jwt.decode(body["id_token"], served_keys(idp), algorithms=["ES256"])
    assert decoded.header["kid"] == idp.current("ES256").kid
    assert decoded.claims["nonce"] == "n-1"


def test_wrong_code_verifier_is_refused(idp: EntraProvider) -> None:
    _, challenge = pkce()
    code = code_from(authorize(idp, code_challenge=challenge))
    wrong, _ = pkce()
    response = exchange(idp, code, wrong)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "id_token" not in response.json()


def test_code_is_single_use(idp: EntraProvider) -> None:
    verifier, challenge = pkce()
    code = code_from(authorize(idp, code_challenge=challenge))
    assert exchange(idp, code, verifier).status_code == 200
    again = exchange(idp, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_client_authentication_and_redirect_binding(idp: EntraProvider) -> None:
    verifier, challenge = pkce()
    code = code_from(authorize(idp, code_challenge=challenge))
    token_url = discovery(idp)["token_endpoint"]
    wrong_secret = httpx.post(
        token_url,
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        auth=(idp.client_id, "not-the-secret"),
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    other_redirect = exchange(idp, code, verifier, redirect_uri="http://127.0.0.1:8000/elsewhere")
    assert other_redirect.status_code == 400
    assert other_redirect.json()["error"] == "invalid_grant"
    # Neither failure spent the code: the right request still gets tokens.
    assert exchange(idp, code, verifier).status_code == 200


def test_authorize_refuses_unregistered_redirects_and_missing_pkce(idp: EntraProvider) -> None:
    _, challenge = pkce()
    unregistered = authorize(
        idp, code_challenge=challenge, redirect_uri="http://127.0.0.1:9/attacker"
    )
    assert unregistered.status_code == 400  # never redirected to an unregistered URI
    assert "location" not in unregistered.headers
    for params in ({"code_challenge_method": ""}, {"code_challenge_method": "plain"}):
        response = authorize(idp, code_challenge=challenge, **params)
        assert response.status_code == 302
        query = parse_qs(urlparse(response.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        assert "code" not in query


def test_overage_replaces_groups_with_the_graph_marker(idp: EntraProvider) -> None:
    idp.overage = True
    oid = idp.next_user["oid"]
    endpoint = f"https://graph.microsoft.com/v1.0/users/{oid}/getMemberObjects"
    body = signed_in(idp)
    for token in (body["id_token"], body["access_token"], idp.access_token()):
        claims = verified(idp, token)
        assert "groups" not in claims
        assert claims["_claim_names"] == {"groups": "src1"}
        assert claims["_claim_sources"] == {"src1": {"endpoint": endpoint}}
    idp.overage = False
    assert verified(idp, idp.access_token())["groups"] == idp.next_user["groups"]


def test_rotation_serves_old_and_new_keys_until_retired(idp: EntraProvider) -> None:
    before = served_keys(idp)
    old_kid = idp.current("RS256").kid
    old_token = idp.mint(idp.claims())
    idp.rotate("RS256")
    new_kid = idp.current("RS256").kid
    assert new_kid != old_kid
    during = served_keys(idp)
    assert {old_kid, new_kid} <= {k.kid for k in during}
    assert len(during.keys) == len(before.keys) + 1
    new_token = idp.mint(idp.claims())
    assert jwt.decode(new_token, during, algorithms=["RS256"]).header["kid"] == new_kid
    jwt.decode(old_token, during, algorithms=["RS256"])
    idp.retire_previous()
    after = served_keys(idp)
    assert old_kid not in {k.kid for k in after}
    assert len(after.keys) == 3  # one current key per algorithm
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(old_token, after, algorithms=["RS256"])


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_mint_signs_with_each_algorithm(idp: EntraProvider, alg: str) -> None:
    token = idp.mint(idp.claims(sub="api-user"), alg=alg)
    claims = verified(idp, token, alg)
    assert claims["sub"] == "api-user"
    assert claims["iss"] == idp.issuer
    assert claims["exp"] - claims["iat"] == 300
    access = verified(idp, idp.access_token(scp="other"), "RS256")
    assert (access["aud"], access["scp"]) == (idp.api_audience, "other")


def test_forged_tokens_are_what_they_claim(idp: EntraProvider) -> None:
    claims = idp.claims()
    keys = served_keys(idp)

    def parts(token: str) -> tuple[dict[str, Any], bytes, bytes]:
        head, body, sig = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=="))
        return header, f"{head}.{body}".encode(), base64.urlsafe_b64decode(sig + "==")

    header, _, signature = parts(idp.unsigned(claims))
    assert header["alg"] == "none"
    assert signature == b""

    header, signing_input, signature = parts(idp.hs256_with_public_key(claims))
    assert (header["alg"], header["kid"]) == ("HS256", idp.current("RS256").kid)
    pem = idp.current("RS256").key.as_pem(private=False)
    assert hmac.compare_digest(signature, hmac.digest(pem, signing_input, hashlib.sha256))

    forged = idp.unknown_kid(claims)
    assert parts(forged)[0]["kid"] not in {k.kid for k in keys.keys}
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(forged, keys, algorithms=["RS256"])
