"""A Keycloak-shaped OpenID provider for tests (a peer, not a mock of our code).

It is the development IdP that ``make run`` ships (``auth/devidp.py``: discovery, JWKS with key
rotation, authorization endpoint, token endpoint with client-secret and PKCE S256 checks and
single-use codes), with one realm, approving at once whichever user the test chose, and helpers
that forge the tokens a hostile client would send. Runs with uvicorn on 127.0.0.1 in a thread and
is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from jwcrypto import jwk, jwt

from auth.devidp import DevIdp, RunningIdp

REALM = "bulwark-test"
RunningProvider = RunningIdp


@dataclass
class OidcProvider(DevIdp):
    next_user: dict[str, Any] = field(default_factory=dict)
    id_token_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.issuer_of(REALM)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "nbf": now - 1,
            "exp": now + 300,
            "sub": "user-1",
            "email": "user1@idp.example",
            "name": "User One",
        }
        return {**base, **self.next_user, **overrides}

    def approve(self, realm: str, query: dict[str, str]) -> dict[str, Any] | None:
        return dict(self.next_user)

    def token_claims(self, realm: str, grant: dict[str, Any]) -> dict[str, Any]:
        return self.claims(**{**grant["user"], "nonce": grant["nonce"], **self.id_token_overrides})

    def unsigned(self, claims: dict[str, Any]) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

    def hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The classic confusion attack: HMAC keyed with the RSA public key's PEM."""
        signing = self.current("RS256")
        secret = signing.key.export_to_pem(private_key=False, password=None)
        hmac_key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(secret).rstrip(b"=").decode())
        token = jwt.JWT(header={"alg": "HS256", "kid": signing.kid}, claims=claims)
        token.make_signed_token(hmac_key)
        return str(token.serialize())
