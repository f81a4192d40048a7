"""OIDC against a Keycloak-shaped provider through python-keycloak.

The JWKS of each issuer is cached in memory and refreshed only when a token names a key id the
cache lacks (key rotation), at most every few seconds, so a flood of tokens with random kids
cannot turn into a flood of JWKS downloads. Tokens are accepted only with RS256 or ES256: ``none``
and HMAC algorithms (the "HS256 keyed with the public key" confusion) are refused before any
signature check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException
from keycloak import KeycloakOpenID
from keycloak.exceptions import KeycloakConnectionError, KeycloakError

ALLOWED_ALGORITHMS = ("RS256", "ES256")


class OidcRejected(Exception):
    """A token or code exchange the provider or the validation refused; ``reason`` is a code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OidcUnreachable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class OidcClient:
    server_url: str
    realm: str
    client_id: str
    client_secret: str | None

    @property
    def issuer(self) -> str:
        return f"{self.server_url.rstrip('/')}/realms/{self.realm}"


class _Jwks:
    def __init__(self) -> None:
        self.keys: jwk.JWKSet | None = None
        self.kids: set[str] = set()
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()


class KeycloakOidc:
    """Process-wide: python-keycloak clients and JWKS caches, per issuer and client."""

    def __init__(self, *, timeout: int = 10, refresh_interval: float = 5.0) -> None:
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self._clients: dict[OidcClient, KeycloakOpenID] = {}
        self._jwks: dict[str, _Jwks] = {}

    def _openid(self, client: OidcClient) -> KeycloakOpenID:
        openid = self._clients.get(client)
        if openid is None:
            openid = KeycloakOpenID(
                server_url=client.server_url.rstrip("/") + "/",
                realm_name=client.realm,
                client_id=client.client_id,
                client_secret_key=client.client_secret,
                timeout=self.timeout,
            )
            self._clients[client] = openid
        return openid

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
        # python-keycloak reads the discovery document synchronously here: keep it off the loop.
        try:
            url = await asyncio.to_thread(
                self._openid(client).auth_url,
                redirect_uri=redirect_uri,
                scope=scope,
                state=state,
                nonce=nonce,
                code_challenge=code_challenge,
                code_challenge_method="S256",
            )
        except KeycloakConnectionError:
            raise OidcUnreachable() from None
        except KeycloakError:
            raise OidcRejected("discovery_failed") from None
        return str(url)

    async def exchange_code(
        self, client: OidcClient, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        try:
            tokens = await self._openid(client).a_token(
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        except KeycloakConnectionError:
            raise OidcUnreachable() from None
        except KeycloakError:
            raise OidcRejected("code_exchange_failed") from None
        if not isinstance(tokens, dict) or "id_token" not in tokens:
            raise OidcRejected("no_id_token")
        return tokens

    async def _key_set(self, client: OidcClient, kid: str | None) -> jwk.JWKSet:
        cache = self._jwks.setdefault(client.issuer, _Jwks())
        async with cache.lock:
            stale = cache.keys is None or (kid is not None and kid not in cache.kids)
            if stale and time.monotonic() - cache.fetched_at >= self.refresh_interval:
                try:
                    certs = await self._openid(client).a_certs()
                except KeycloakConnectionError:
                    raise OidcUnreachable() from None
                except KeycloakError:
                    raise OidcRejected("jwks_unavailable") from None
                key_set = jwk.JWKSet()
                for key in certs.get("keys", []):
                    try:
                        key_set.add(jwk.JWK(**key))
                    except (JWException, ValueError, TypeError):
                        continue  # skip keys we cannot use (e.g. encryption keys)
                cache.keys, cache.fetched_at = key_set, time.monotonic()
                cache.kids = {str(k.get("kid")) for k in certs.get("keys", [])}
            if cache.keys is None:
                raise OidcRejected("jwks_unavailable")
            if kid is not None and kid not in cache.kids:
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
        """Signature (cached JWKS), algorithm, iss, aud, exp, nbf (and nonce for ID tokens)."""
        header = _header(token)
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise OidcRejected("algorithm_not_allowed")
        keys = await self._key_set(client, header.get("kid"))
        check: dict[str, Any] = {"iss": client.issuer, "exp": None, "sub": None}
        if nonce is not None:
            check["nonce"] = nonce
        try:
            claims = KeycloakOpenID._verify_token(
                token,
                keys,
                algs=list(ALLOWED_ALGORITHMS),
                check_claims=check,
                leeway=leeway,
                expected_type="JWS",
            )
        except jwt.JWTExpired:
            raise OidcRejected("expired") from None
        except jwt.JWTNotYetValid:
            raise OidcRejected("not_yet_valid") from None
        except jwt.JWTInvalidClaimValue as exc:
            raise OidcRejected(_claim_reason(str(exc))) from None
        except jwt.JWTMissingClaim:
            raise OidcRejected("missing_claim") from None
        except (jws.InvalidJWSSignature, jws.InvalidJWSObject, JWException, ValueError):
            raise OidcRejected("invalid_signature") from None
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if audience not in audiences and claims.get("azp") != audience:
            raise OidcRejected("wrong_audience")
        if "nbf" in claims and claims["nbf"] > time.time() + leeway:
            raise OidcRejected("not_yet_valid")
        return dict(claims)


def _header(token: str) -> dict[str, Any]:
    try:
        encoded = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, IndexError):
        raise OidcRejected("malformed_token") from None
    if not isinstance(header, dict):
        raise OidcRejected("malformed_token")
    return header


def _claim_reason(message: str) -> str:
    for claim, reason in (
        ("iss", "wrong_issuer"),
        ("aud", "wrong_audience"),
        ("nonce", "wrong_nonce"),
    ):
        if f"'{claim}'" in message or f'"{claim}"' in message or f" {claim} " in message:
            return reason
    return "invalid_claim"
