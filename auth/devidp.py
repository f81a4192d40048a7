"""A development-only OpenID provider, Keycloak-shaped, for the embedded default.

``make run`` (``bulwark demo`` then ``bulwark serve --dev-idp``) signs the demo tenants in through
it, so that the console is reached the way production reaches it — through the tenant's own IdP —
and no password form exists anywhere in Bulwark. It serves, under ``/realms/{realm}/``, the
discovery document, a JWKS, an authorization endpoint and a token endpoint with client-secret and
PKCE (S256) checks and single-use codes; tokens are signed with jwcrypto, which python-keycloak
itself verifies with. The "login" is a page listing the realm's configured people, each a
button: there is no password, so it must never face a network. It only ever binds 127.0.0.1 and
refuses to start in a production environment.

The test suite runs the same provider (``tests/peers/oidc_provider.py`` subclasses it to approve
a scripted user at once and to forge bad tokens).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import uvicorn
from jwcrypto import jwk, jwt
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

LOOPBACK = "127.0.0.1"
_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass(frozen=True)
class DevUser:
    """A person the dev IdP can sign in as (the claims it asserts)."""

    sub: str
    email: str
    name: str
    groups: tuple[str, ...] = ()

    def claims(self) -> dict[str, Any]:
        return {"sub": self.sub, "email": self.email, "name": self.name, "groups": [*self.groups]}


@dataclass
class SigningKey:
    kid: str
    alg: str
    key: jwk.JWK


@dataclass
class DevIdp:
    """The provider's state: client, signing keys, pending codes and each realm's people."""

    client_id: str = "bulwark"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = 0
    realms: dict[str, list[DevUser]] = field(default_factory=dict)
    keys: list[SigningKey] = field(default_factory=list)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Only redirect URIs under this prefix are sent codes (the Bulwark deployment's public URL).
    redirect_prefix: str = "http://127.0.0.1:"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def issuer_of(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

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

    # -- hooks (the test peer overrides them) -------------------------------------------------
    def approve(self, realm: str, query: dict[str, str]) -> dict[str, Any] | None:
        """The user to approve at once, or None to show the chooser page."""
        return None

    def token_claims(self, realm: str, grant: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer_of(realm),
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "nbf": now - 1,
            "exp": now + 300,
            **grant["user"],
            "nonce": grant["nonce"],
        }

    # -- the flow -----------------------------------------------------------------------------
    def _issue_code(self, query: dict[str, str], user: dict[str, Any]) -> str:
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "client_id": query.get("client_id"),
            "redirect_uri": query.get("redirect_uri"),
            "nonce": query.get("nonce"),
            "challenge": query.get("code_challenge"),
            "method": query.get("code_challenge_method"),
            "user": dict(user),
        }
        back = urlencode({"code": code, "state": query.get("state") or ""})
        return f"{query.get('redirect_uri')}?{back}"

    def _acceptable(self, query: dict[str, str]) -> bool:
        return query.get("client_id") == self.client_id and str(
            query.get("redirect_uri") or ""
        ).startswith(self.redirect_prefix)

    def _chooser(self, realm: str, query: dict[str, str]) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in query.items()
            if k in _FLOW_PARAMS
        )
        buttons = "".join(
            f'<li><form method="post"><input type="hidden" name="user" value="{i}">{hidden}'
            f'<button type="submit">{escape(u.name)} &lt;{escape(u.email)}&gt;'
            f"{' — ' + escape(', '.join(u.groups)) if u.groups else ''}</button></form></li>"
            for i, u in enumerate(self.realms.get(realm, []))
        )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Dev IdP — {escape(realm)}</title>"
            "</head><body>"
            f"<h1>Development identity provider: {escape(realm)}</h1>"
            "<p>For local development only: choose who to sign in as. No password is asked; "
            "this provider listens on 127.0.0.1 and never runs in production.</p>"
            f"<ul>{buttons or '<li>No users are configured for this realm.</li>'}</ul>"
            "</body></html>"
        )

    def app(self) -> Litestar:
        provider = self
        prefix = "/realms/{realm:str}"
        endpoint = f"{prefix}/protocol/openid-connect"

        @get(f"{prefix}/.well-known/openid-configuration", sync_to_thread=False)
        def discovery(realm: FromPath[str]) -> dict[str, Any]:
            base = f"{provider.issuer_of(realm)}/protocol/openid-connect"
            return {
                "issuer": provider.issuer_of(realm),
                "authorization_endpoint": f"{base}/auth",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/certs",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }

        @get(f"{endpoint}/certs", sync_to_thread=False)
        def certs(realm: FromPath[str]) -> dict[str, Any]:
            return provider.jwks()

        @get(f"{endpoint}/auth", sync_to_thread=False)
        def authorize(request: Request[Any, Any, Any], realm: FromPath[str]) -> Response[Any]:
            query = {k: str(v) for k, v in request.query_params.items()}
            user = provider.approve(realm, query)
            if user is not None:
                return Redirect(provider._issue_code(query, user), status_code=302)
            if not provider._acceptable(query):
                return Response("unknown client or redirect_uri", status_code=400)
            return Response(
                provider._chooser(realm, query),
                media_type=MediaType.HTML,
                headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
            )

        @post(f"{endpoint}/auth", status_code=302)
        async def choose(request: Request[Any, Any, Any], realm: FromPath[str]) -> Response[Any]:
            form = {k: str(v) for k, v in (await request.form()).items()}
            people = provider.realms.get(realm, [])
            index = form.get("user", "")
            if not provider._acceptable(form) or not index.isdigit() or int(index) >= len(people):
                return Response("invalid sign-in", status_code=400)
            target = provider._issue_code(form, people[int(index)].claims())
            return Redirect(target, status_code=302)

        @post(f"{endpoint}/token", status_code=200)
        async def token(
            request: Request[Any, Any, Any], realm: FromPath[str]
        ) -> Response[dict[str, Any]]:
            form = await request.form()
            grant = provider.codes.pop(str(form.get("code")), None)  # single use
            secret_ok = secrets.compare_digest(
                str(form.get("client_secret") or ""), provider.client_secret
            )
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
            claims = provider.token_claims(realm, grant)
            return Response(
                {
                    "access_token": provider.sign(claims),
                    "id_token": provider.sign(claims),
                    "token_type": "Bearer",
                    "expires_in": 300,
                },
                status_code=200,
            )

        return Litestar([discovery, certs, authorize, choose, token], logging_config=None)


_FLOW_PARAMS = (
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_type",
    "scope",
)


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread, as a context manager
    (the development IdP here; the console's browser tests serve Bulwark itself with it)."""

    def __init__(
        self, app: Any, port: int, *, lifespan: Literal["on", "off"] = "off", wait: float = 10
    ) -> None:
        config = uvicorn.Config(
            app, host=LOOPBACK, port=port, log_level="warning", lifespan=lifespan
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.wait = wait

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + self.wait
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class RunningIdp(LoopbackServer):
    """The development IdP on 127.0.0.1 (a free port unless it has one); enters as the IdP."""

    def __init__(self, provider: DevIdp) -> None:
        if provider.port == 0:
            with socket.socket() as sock:
                sock.bind((LOOPBACK, 0))
                provider.port = sock.getsockname()[1]
        if not provider.keys:
            provider.rotate("RS256")
        self.provider = provider
        super().__init__(provider.app(), provider.port)

    def __enter__(self) -> DevIdp:  # type: ignore[override]
        self.start()
        return self.provider


# -- the embedded default's configuration file (written by `bulwark demo`) ----------------------


def config_path(data_dir: Path) -> Path:
    return data_dir.absolute() / "dev-idp.json"


def save_config(path: Path, provider: DevIdp) -> None:
    """Client secret, port and realms; mode 0600 like the other secrets of the data dir."""
    data = {
        "port": provider.port,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "redirect_prefix": provider.redirect_prefix,
        "realms": {
            realm: [
                {"sub": u.sub, "email": u.email, "name": u.name, "groups": list(u.groups)}
                for u in users
            ]
            for realm, users in provider.realms.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


def load_config(path: Path) -> DevIdp:
    data = json.loads(path.read_text())
    return DevIdp(
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        port=int(data["port"]),
        redirect_prefix=data["redirect_prefix"],
        realms={
            realm: [
                DevUser(u["sub"], u["email"], u["name"], tuple(u.get("groups", []))) for u in users
            ]
            for realm, users in data["realms"].items()
        },
    )
