"""A Keycloak-shaped OpenID provider for tests (a peer, not a mock of our code).

It serves, under ``/realms/{realm}/``, the discovery document, a JWKS with key rotation, the
authorization endpoint (approving whichever user the test chose) and the token endpoint with
client-secret and PKCE (S256) checks and single-use codes. Tokens are signed with jwcrypto,
the library python-keycloak itself verifies with. Runs with uvicorn on 127.0.0.1 in a thread and
is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from jwcrypto import jwk, jwt
from litestar import Litestar, Request, Response, get, post
from litestar.response import Redirect

REALM = "bulwark-test"


@dataclass
class SigningKey:
    kid: str
    alg: str
    key: jwk.JWK


@dataclass
class OidcProvider:
    client_id: str = "bulwark"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = 0
    keys: list[SigningKey] = field(default_factory=list)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_user: dict[str, Any] = field(default_factory=dict)
    id_token_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    def rotate(self, alg: str = "RS256") -> SigningKey:
        key = (
            jwk.JWK.generate(kty="RSA", size=2048)
            if alg == "RS256"
            else jwk.JWK.generate(kty="EC", crv="P-256")
        )
        signing = SigningKey(kid=f"k-{uuid.uuid4().hex[:8]}", alg=alg, key=key)
        self.keys.append(signing)
        return signing

    def current(self, alg: str = "RS256") -> SigningKey:
        return [k for k in self.keys if k.alg == alg][-1]

    def jwks(self) -> dict[str, Any]:
        out = []
        for signing in self.keys:
            public = json.loads(signing.key.export_public())
            out.append({**public, "kid": signing.kid, "alg": signing.alg, "use": "sig"})
        return {"keys": out}

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

    def sign(
        self,
        claims: dict[str, Any],
        *,
        alg: str = "RS256",
        kid: str | None = None,
        key: SigningKey | None = None,
    ) -> str:
        signing = key or self.current(alg)
        token = jwt.JWT(
            header={"alg": signing.alg, "kid": kid or signing.kid, "typ": "JWT"}, claims=claims
        )
        token.make_signed_token(signing.key)
        return str(token.serialize())

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

    # -- the HTTP app -------------------------------------------------------------------------
    def app(self) -> Litestar:
        provider = self
        prefix = f"/realms/{REALM}"

        @get(f"{prefix}/.well-known/openid-configuration", sync_to_thread=False)
        def discovery() -> dict[str, Any]:
            endpoint = f"{provider.issuer}/protocol/openid-connect"
            return {
                "issuer": provider.issuer,
                "authorization_endpoint": f"{endpoint}/auth",
                "token_endpoint": f"{endpoint}/token",
                "jwks_uri": f"{endpoint}/certs",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @get(f"{prefix}/protocol/openid-connect/certs", sync_to_thread=False)
        def certs() -> dict[str, Any]:
            return provider.jwks()

        @get(f"{prefix}/protocol/openid-connect/auth", sync_to_thread=False)
        def authorize(request: Request[Any, Any, Any]) -> Redirect:
            query = request.query_params
            code = secrets.token_urlsafe(16)
            provider.codes[code] = {
                "client_id": query.get("client_id"),
                "redirect_uri": query.get("redirect_uri"),
                "nonce": query.get("nonce"),
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method"),
                "user": dict(provider.next_user),
            }
            back = urlencode({"code": code, "state": query.get("state")})
            target = f"{query.get('redirect_uri')}?{back}"
            return Redirect(target, status_code=302)

        @post(f"{prefix}/protocol/openid-connect/token", status_code=200)
        async def token(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
            form = await request.form()
            grant = provider.codes.pop(str(form.get("code")), None)  # single use
            secret_ok = form.get("client_secret") == provider.client_secret
            if grant is None or not secret_ok or form.get("client_id") != grant["client_id"]:
                return Response({"error": "invalid_grant"}, status_code=400)
            verifier = str(form.get("code_verifier") or "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if grant["method"] != "S256" or challenge != grant["challenge"]:
                return Response(
                    {"error": "invalid_grant", "error_description": "PKCE"}, status_code=400
                )
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return Response({"error": "invalid_grant"}, status_code=400)
            claims = provider.claims(
                **{**grant["user"], "nonce": grant["nonce"], **provider.id_token_overrides}
            )
            return Response(
                {
                    "access_token": provider.sign(claims),
                    "id_token": provider.sign(claims),
                    "token_type": "Bearer",
                    "expires_in": 300,
                },
                status_code=200,
            )

        return Litestar([discovery, certs, authorize, token], logging_config=None)


class RunningProvider:
    def __init__(self, provider: OidcProvider) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            provider.port = sock.getsockname()[1]
        self.provider = provider
        config = uvicorn.Config(
            provider.app(),
            host="127.0.0.1",
            port=provider.port,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> OidcProvider:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test OIDC provider did not start")
            time.sleep(0.05)
        return self.provider

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
