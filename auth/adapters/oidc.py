"""OpenID Connect with any standards-compliant provider: discovery, the code flow's two
requests, and token validation.

- **Discovery** from the issuer (``{issuer}/.well-known/openid-configuration``); the document's
  ``issuer`` must equal the configured one exactly (OIDC Discovery 4.3), so Entra ID's per-tenant
  ``https://login.microsoftonline.com/<tenant>/v2.0``, Okta's ``/oauth2/default``, Auth0's
  trailing slash and Keycloak's ``/realms/<name>`` are all just issuers.
- **The code flow** through Authlib's OAuth 2 client parts: the authorization URL
  (``prepare_grant_uri``), the token request (``prepare_token_request``) and the client
  authentication the provider advertises (``ClientAuth``: ``client_secret_basic`` unless only
  ``client_secret_post`` is offered). PKCE S256 and the nonce are the caller's.
- **Tokens** through joserfc: the signature against the provider's JWKS, an algorithm allow-list
  (RS256, ES256, PS256: ``none`` and HMAC — the "HS256 keyed with the public key" confusion — are
  refused before any key is touched), ``iss`` exact, ``exp``/``nbf``/``iat`` with the configured
  leeway, ``sub`` present, ``nonce`` for ID tokens, and the audience (``aud``, or ``azp`` as
  Keycloak puts its client in access tokens).

The JWKS of each issuer is cached in memory and refreshed only when a token names a key id the
cache lacks (key rotation), at most every few seconds, so a flood of tokens with random kids
cannot become a flood of JWKS downloads. Discovery documents are cached for an hour. Caches are
per tenant and issuer: what one tenant's egress allowances fetched never serves another.

Every request goes through the egress guard (``kernel.adapters.egress_http.EgressFetcher``):
discovery, the JWKS and the token endpoint are URLs a tenant configured, directly or through its
IdP's discovery document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    DecodeError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import JWKRegistry

from kernel.adapters.egress_http import EgressFetcher, EgressUnavailable
from kernel.egress import EgressPolicy

ALLOWED_ALGORITHMS = ("RS256", "ES256", "PS256")
_KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
DISCOVERY_PATH = "/.well-known/openid-configuration"


class OidcRejected(Exception):
    """A token or code exchange the provider or the validation refused; ``reason`` is a code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OidcUnreachable(Exception):
    """The provider could not be used now (down, slow, malformed answers, or a URL the egress
    guard refused: ``refused`` then names why)."""

    def __init__(self, reason: str = "unreachable", refused: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


@dataclass(frozen=True, slots=True)
class OidcClient:
    """One tenant's relying-party registration at its provider."""

    tenant: str  # the tenant's slug: whose egress allowances apply, whose caches these are
    issuer: str
    client_id: str
    client_secret: str | None


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]

    @classmethod
    def parse(cls, document: dict[str, Any], issuer: str) -> ProviderMetadata:
        named = document.get("issuer")
        if not isinstance(named, str):
            raise OidcUnreachable("malformed_discovery")
        if named != issuer:  # another issuer's document: the configuration is wrong
            raise OidcRejected("issuer_mismatch")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise OidcUnreachable("malformed_discovery")
            endpoints[name] = value
        methods = document.get("token_endpoint_auth_methods_supported")
        return cls(
            issuer=issuer,
            token_auth_methods=tuple(m for m in methods if isinstance(m, str))
            if isinstance(methods, list)
            else (),
            **endpoints,
        )

    def client_auth_method(self, has_secret: bool) -> str:
        if not has_secret:
            return "none"
        if "client_secret_basic" in self.token_auth_methods or not self.token_auth_methods:
            return "client_secret_basic"  # the default of RFC 8414 and OIDC Discovery
        if "client_secret_post" in self.token_auth_methods:
            return "client_secret_post"
        return "client_secret_basic"


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, str(create_s256_code_challenge(verifier))


class _Jwks:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> joserfc key
        self.fetched_at = 0.0
        self.fetched = False
        self.lock = asyncio.Lock()


class OidcProviders:
    """Process-wide: discovery documents and key sets per tenant and issuer."""

    def __init__(
        self,
        egress: EgressPolicy,
        *,
        timeout: float = 10.0,
        refresh_interval: float = 5.0,
        metadata_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.egress = egress
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self.metadata_ttl = metadata_ttl
        self.clock = clock
        self._metadata: dict[tuple[str, str], tuple[float, ProviderMetadata]] = {}
        self._jwks: dict[tuple[str, str], _Jwks] = {}

    def _fetcher(self, client: OidcClient) -> EgressFetcher:
        return EgressFetcher(self.egress.for_tenant(client.tenant), timeout=self.timeout)

    async def metadata(self, client: OidcClient) -> ProviderMetadata:
        key = (client.tenant, client.issuer)
        cached = self._metadata.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.metadata_ttl:
            return cached[1]
        url = client.issuer.rstrip("/") + DISCOVERY_PATH
        document = await _call(self._fetcher(client).get_json(url))
        metadata = ProviderMetadata.parse(document, client.issuer)
        self._metadata[key] = (time.monotonic(), metadata)
        return metadata

    async def authorization_url(
        self,
        client: OidcClient,
        *,
        redirect_uri: str,
        scope: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        metadata = await self.metadata(client)
        return str(
            prepare_grant_uri(
                metadata.authorization_endpoint,
                client.client_id,
                "code",
                redirect_uri=redirect_uri,
                scope=scope,
                state=state,
                nonce=nonce,
                code_challenge=code_challenge,
                code_challenge_method="S256",
            )
        )

    async def exchange_code(
        self, client: OidcClient, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        metadata = await self.metadata(client)
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            # A public client names itself in the body; a confidential one authenticates below.
            **({} if client.client_secret else {"client_id": client.client_id}),
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if client.client_secret:
            auth = ClientAuth(
                client.client_id,
                client.client_secret,
                metadata.client_auth_method(has_secret=True),
            )
            _, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        form = dict(_form_pairs(body))
        try:
            tokens = await self._fetcher(client).post_form(
                metadata.token_endpoint, form, headers=headers
            )
        except EgressUnavailable as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise OidcRejected("code_exchange_failed") from None
            raise _unreachable(exc) from None
        if not isinstance(tokens.get("id_token"), str):
            # A token response without an ID token is not an OIDC answer: the provider is not
            # usable now (a 503), whatever it meant.
            raise OidcUnreachable("malformed_token_response")
        return tokens

    async def _keys(self, client: OidcClient, kid: str | None) -> dict[str, Any]:
        cache = self._jwks.setdefault((client.tenant, client.issuer), _Jwks())
        async with cache.lock:
            stale = not cache.fetched or (kid is not None and kid not in cache.keys)
            if stale and time.monotonic() - cache.fetched_at >= self.refresh_interval:
                metadata = await self.metadata(client)
                document = await _call(self._fetcher(client).get_json(metadata.jwks_uri))
                cache.keys = _import_keys(document)
                cache.fetched, cache.fetched_at = True, time.monotonic()
            if not cache.fetched:
                raise OidcUnreachable("jwks_unavailable")
            if kid is not None and kid not in cache.keys:
                raise OidcRejected("unknown_key")
            return cache.keys

    async def validate(
        self,
        client: OidcClient,
        token: str,
        *,
        audience: str,
        leeway: int,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        """Signature (cached JWKS), algorithm, iss, aud, exp, nbf, iat (and nonce for ID
        tokens); the claims on success, ``OidcRejected`` with a reason otherwise."""
        header = _header(token)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise OidcRejected("algorithm_not_allowed")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        keys = await self._keys(client, kid)
        candidates = [keys[kid]] if kid is not None else [k for k in keys.values() if _fits(k, alg)]
        claims = _verified_claims(token, candidates, alg)
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": client.issuer},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        registry = jwt.JWTClaimsRegistry(now=int(self.clock()), leeway=leeway, **options)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcRejected("expired") from None
        except MissingClaimError:
            raise OidcRejected("missing_claim") from None
        except ClaimError as exc:
            raise OidcRejected(_CLAIM_REASONS.get(exc.claim, "invalid_claim")) from None
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if audience not in audiences and claims.get("azp") != audience:
            raise OidcRejected("wrong_audience")
        return claims


_CLAIM_REASONS = {
    "iss": "wrong_issuer",
    "nonce": "wrong_nonce",
    "nbf": "not_yet_valid",
    "iat": "not_yet_valid",
    "sub": "missing_claim",
}


def _verified_claims(token: str, keys: list[Any], alg: str) -> dict[str, Any]:
    for key in keys:
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            continue
        except (DecodeError, JoseError, ValueError, TypeError):
            raise OidcRejected("invalid_signature") from None
        if not isinstance(decoded.claims, dict):
            raise OidcRejected("malformed_token")
        return dict(decoded.claims)
    raise OidcRejected("invalid_signature")


def _fits(key: Any, alg: str) -> bool:
    return bool(key.key_type == _KEY_TYPES[alg])


def _import_keys(document: dict[str, Any]) -> dict[str, Any]:
    """The signing keys of a JWKS by kid; keys we cannot use (encryption keys, other types,
    malformed entries) are skipped, and a document without a ``keys`` list is malformed."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise OidcUnreachable("malformed_jwks")
    keys: dict[str, Any] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else f"#{index}"] = key
    return keys


async def _call(fetch: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await fetch
    except EgressUnavailable as exc:
        raise _unreachable(exc) from None
    return result


def _unreachable(exc: EgressUnavailable) -> OidcUnreachable:
    if exc.refused:
        return OidcUnreachable("egress_refused", refused=exc.reason.partition(":")[2])
    return OidcUnreachable(exc.reason)


def _form_pairs(body: str) -> list[tuple[str, str]]:
    return parse_qsl(body, keep_blank_values=True)


def _header(token: str) -> dict[str, Any]:
    try:
        encoded = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, IndexError):
        raise OidcRejected("malformed_token") from None
    if not isinstance(header, dict):
        raise OidcRejected("malformed_token")
    return header
