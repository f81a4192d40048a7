"""An Entra-ID-shaped OpenID provider for tests: the second, independent peer of #23.

The Keycloak-shaped peer (``oidc_provider.py``) is Bulwark's own development IdP. This one shares
no code with it or with ``auth/``: the authorization and token endpoints are Authlib's
authorization server (``AuthorizationCodeGrant`` with the ``OpenIDCode`` and ``CodeChallenge``
extensions, so client authentication, redirect-URI binding, single-use codes and PKCE are checked
by Authlib, not by us), served by Flask/werkzeug on 127.0.0.1 in a thread, with keys and tokens
from joserfc.

What makes it Entra-shaped, i.e. what a client written only against Keycloak gets wrong:

- the per-tenant v2.0 issuer ``http://127.0.0.1:{port}/{tenant_guid}/v2.0``, with the endpoints
  *not* under the issuer (``/{tenant_guid}/oauth2/v2.0/...``,
  ``/{tenant_guid}/discovery/v2.0/keys``);
- JWKS entries without ``alg`` (Entra publishes ``kty``/``use``/``kid`` and the key, plus its
  ``issuer``), so the algorithm comes from the token header and the verifier's allow-list;
- claims ``tid``, ``oid``, ``ver`` "2.0", ``preferred_username``, ``groups`` as GUIDs, app
  ``roles``; access tokens for an API audience (``api://...``) with ``scp``;
- the group overage marker (``_claim_names``/``_claim_sources`` instead of ``groups``).

Like Entra it approves at once (the test sets ``next_user``), and it forges the tokens a hostile
client would send (``unsigned``, ``hs256_with_public_key``, ``unknown_kid``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK = "127.0.0.1"
ALGORITHMS = ("RS256", "PS256", "ES256")
TOKEN_LIFETIME = 300


def _new_key(alg: str) -> RSAKey | ECKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    return RSAKey.generate_key(2048)


@dataclass
class SigningKey:
    kid: str
    alg: str
    key: RSAKey | ECKey


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    """The one registered confidential web app (client_secret_basic or client_secret_post)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: dict[str, Any]
    auth_time: int = field(default_factory=lambda: int(time.time()))
    expires_at: float = field(default_factory=lambda: time.time() + 600)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE required on every authorization request, and only S256 (no ``plain``)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        if grant.request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required")
        super().validate_code_challenge(grant, redirect_uri)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    """A compact JWS built by hand: only for the forgeries joserfc rightly refuses to make."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


class EntraProvider:
    """One Entra ID tenant with one registered web app, on 127.0.0.1 (port 0: a free one)."""

    def __init__(self) -> None:
        self.tenant_guid = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())  # Entra app (client) ids are GUIDs
        self.client_secret = secrets.token_urlsafe(24)
        self.api_audience = "api://bulwark-test"
        n = uuid.uuid4().hex[:8]
        self.next_user: dict[str, Any] = {
            "sub": _b64(secrets.token_bytes(32)),  # pairwise per app, like Entra's
            "oid": str(uuid.uuid4()),
            "email": f"user-{n}@contoso.example",
            "preferred_username": f"user-{n}@contoso.example",
            "name": f"User {n}",
            "groups": [str(uuid.uuid4())],
            "roles": [],
        }
        self.overage = False
        self.id_token_alg = "RS256"
        # Merged last into ID tokens from the token endpoint (e.g. a wrong ``aud`` or ``nonce``).
        self.id_token_overrides: dict[str, Any] = {}
        self.requests: list[str] = []
        self.keys: list[SigningKey] = []
        for alg in ALGORITHMS:
            self.rotate(alg)
        self.port = 0
        self._client = _Client(self.client_id, self.client_secret, [])
        self._codes: dict[str, _Code] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{self.tenant_guid}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/v2.0"

    def discovery(self) -> dict[str, Any]:
        oauth2 = f"{self.base_url}/oauth2/v2.0"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{oauth2}/authorize",
            "token_endpoint": f"{oauth2}/token",
            "jwks_uri": f"{self.base_url}/discovery/v2.0/keys",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "token_endpoint_auth_methods_supported": list(
                AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS
            ),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                *("sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "tid", "oid", "ver"),
                *("name", "email", "preferred_username", "groups", "roles"),
            ],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def register_redirect_uri(self, uri: str) -> None:
        self._client.redirect_uris.append(uri)

    # -- keys ------------------------------------------------------------------------------------
    def rotate(self, alg: str = "RS256") -> None:
        """A new current key for ``alg``; the JWKS keeps serving the previous ones."""
        self.keys.append(SigningKey(kid=_b64(secrets.token_bytes(15)), alg=alg, key=_new_key(alg)))

    def retire_previous(self) -> None:
        self.keys = [self.current(alg) for alg in ALGORITHMS]

    def current(self, alg: str = "RS256") -> SigningKey:
        return [k for k in self.keys if k.alg == alg][-1]

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**k.key.as_dict(private=False), "kid": k.kid, "use": "sig", "issuer": self.issuer}
                for k in self.keys
            ]
        }

    # -- tokens ----------------------------------------------------------------------------------
    def _claims_for(self, user: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        out: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "tid": self.tenant_guid,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "ver": "2.0",
            **user,
        }
        if self.overage:
            # Entra leaves out a user's groups past its limit and points at Graph instead.
            out.pop("groups", None)
            out["_claim_names"] = {"groups": "src1"}
            out["_claim_sources"] = {
                "src1": {
                    "endpoint": f"https://graph.microsoft.com/v1.0/users/{out.get('oid')}"
                    "/getMemberObjects"
                }
            }
        return {**out, **overrides}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """An ID token's claims for ``next_user`` (as the token endpoint would issue them)."""
        return self._claims_for(self.next_user, **overrides)

    def mint(
        self,
        claims: dict[str, Any],
        *,
        alg: str = "RS256",
        kid: str | None = None,
        typ: str = "JWT",
    ) -> str:
        signing = self.current(alg)
        header = {"alg": alg, "kid": kid or signing.kid, "typ": typ}
        return jwt.encode(header, claims, signing.key, algorithms=[alg])

    def access_token(self, **overrides: Any) -> str:
        return self.mint(self._access_claims(self.next_user, **overrides))

    def _access_claims(self, user: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        api = {"aud": self.api_audience, "azp": self.client_id, "scp": "access_as_user"}
        return self._claims_for(user, **{**api, **overrides})

    def unsigned(self, claims: dict[str, Any]) -> str:
        return _compact({"alg": "none", "typ": "JWT"}, claims, lambda _: b"")

    def hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The algorithm-confusion attack: HMAC keyed with the RSA public key's PEM. joserfc
        will not use a public key as an HMAC secret, so it is signed with the standard library."""
        signing = self.current("RS256")
        secret = signing.key.as_pem(private=False)
        header = {"alg": "HS256", "kid": signing.kid, "typ": "JWT"}
        return _compact(header, claims, lambda data: hmac.digest(secret, data, hashlib.sha256))

    def unknown_kid(self, claims: dict[str, Any]) -> str:
        key = _new_key("RS256")
        header = {"alg": "RS256", "kid": _b64(secrets.token_bytes(15)), "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=["RS256"])

    # -- the authorization server (Authlib) ------------------------------------------------------
    def _authorization_server(self, app: Flask) -> AuthorizationServer:
        provider = self

        class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
            def save_authorization_code(self, code: str, req: Any) -> None:
                payload = req.payload
                provider._codes[code] = _Code(
                    code=code,
                    client_id=req.client.get_client_id(),
                    redirect_uri=payload.redirect_uri,
                    scope=payload.scope,
                    nonce=payload.data.get("nonce"),
                    code_challenge=payload.data.get("code_challenge"),
                    code_challenge_method=payload.data.get("code_challenge_method"),
                    user=dict(req.user),
                )

            def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
                found = provider._codes.get(code)
                if found and found.client_id == client.client_id and found.expires_at > time.time():
                    return found
                return None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                provider._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class EntraOpenIDCode(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider._codes.values())

            def get_client_algorithm(self, client: _Client) -> str:
                return provider.id_token_alg

            def resolve_client_private_key(self, client: _Client) -> RSAKey | ECKey:
                return provider.current(provider.id_token_alg).key

            def get_encode_header(self, client: _Client) -> dict[str, Any]:
                signing = provider.current(provider.id_token_alg)
                return {"alg": signing.alg, "kid": signing.kid, "typ": "JWT"}

            def generate_user_info(self, user: dict[str, Any], scope: str) -> dict[str, Any]:
                # Authlib puts nonce, auth_time and at_hash in; the rest is Entra's claim set.
                return provider._claims_for(user, **provider.id_token_overrides)

        app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = lambda client, grant_type, user, scope: (
            provider.mint(provider._access_claims(user))
        )
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": TOKEN_LIFETIME}
        server = AuthorizationServer(app, query_client=self._query_client, save_token=_discard)
        server.register_grant(CodeGrant, [EntraOpenIDCode(require_nonce=False), _S256Only()])
        return server

    def _query_client(self, client_id: str) -> _Client | None:
        return self._client if client_id == self.client_id else None

    def app(self) -> Flask:
        app = Flask(__name__)
        server = self._authorization_server(app)
        prefix = f"/{self.tenant_guid}"

        @app.before_request
        def record() -> None:
            self.requests.append(request.path)

        @app.get(f"{prefix}/v2.0/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(self.discovery())

        @app.get(f"{prefix}/discovery/v2.0/keys")
        def keys() -> Any:
            return jsonify(self.jwks())

        @app.get(f"{prefix}/oauth2/v2.0/authorize")
        def authorize() -> Any:
            # No sign-in page: the scripted user consents at once, as a signed-in Entra user would.
            user = dict(self.next_user)
            try:
                grant = server.get_consent_grant(end_user=user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            return server.create_authorization_response(grant_user=user, grant=grant)

        @app.post(f"{prefix}/oauth2/v2.0/token")
        def token() -> Any:
            return server.create_token_response()

        return app

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._server = make_server(
            LOOPBACK, 0, self.app(), threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> EntraProvider:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _discard(token: dict[str, Any], request: Any) -> None:
    """Issued tokens are self-contained JWTs; nothing to store."""


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
