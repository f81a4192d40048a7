"""Identity-provider replies that are not OIDC's, fed to the OIDC adapter by a real HTTP server
on 127.0.0.1: discovery documents, key sets and token responses that are empty, cut short,
HTML, or JSON without the fields the call needs. Each is the provider being unavailable
(``OidcUnreachable``, a 503 ``idp_unavailable`` at the API), never a 500; and the same provider
answering properly again works at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from auth.adapters.oidc import OidcClient, OidcProviders, OidcUnreachable
from kernel.egress import EgressPolicy
from tests.peers.entra_provider import EntraProvider
from tests.peers.raw_http import RawHttpPeer, RawReply, RawRequest, cut
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api

DISCOVERY = "/t/.well-known/openid-configuration"
BROKEN: dict[str, RawReply] = {
    "empty": RawReply(b""),
    "html": RawReply(b"<html><body>Proxy error", content_type="text/html"),
    "truncated": RawReply(b'{"issuer": "http://127.0', content_type="application/json"),
    "cut_with_the_connection": cut(RawReply(b'{"keys": [], "issuer": "x"}'), 10),
    "error_page_5xx": RawReply(b"<html>Bad gateway</html>", status=502, content_type="text/html"),
    "json_array": RawReply(b"[]"),
    "fields_missing": RawReply(b"{}"),
}


class BrokenIdp:
    """A provider that answers properly except for one call, which gets the broken reply."""

    def __init__(self, call: str, broken: RawReply) -> None:
        self.call, self.broken = call, broken
        self.keys = EntraProvider()  # a key set and tokens signed with it, nothing served
        self.peer = RawHttpPeer(self.answer)

    @property
    def issuer(self) -> str:
        return f"{self.peer.base_url}/t"

    def answer(self, request: RawRequest) -> RawReply:
        call = {DISCOVERY: "discovery", "/t/keys": "jwks", "/t/token": "token"}[request.path]
        if call == self.call:
            return self.broken
        body: dict[str, Any] = {
            "discovery": {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/keys",
            },
            "jwks": self.keys.jwks(),
            "token": {"access_token": "a", "token_type": "Bearer", "id_token": "x.y.z"},
        }[call]
        return RawReply(json.dumps(body).encode())


@pytest.fixture(params=["discovery", "jwks", "token"])
def call(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(BROKEN))
def idp(request: pytest.FixtureRequest, call: str) -> Iterator[BrokenIdp]:
    broken = BrokenIdp(call, BROKEN[request.param])
    with broken.peer:
        yield broken


async def exercise(providers: OidcProviders, idp: BrokenIdp, call: str) -> None:
    client = OidcClient(tenant="t", issuer=idp.issuer, client_id="c", client_secret="s")
    if call == "token":
        await providers.exchange_code(
            client, code="k", redirect_uri="http://x/cb", code_verifier="v"
        )
    else:
        token = idp.keys.mint({"iss": idp.issuer, "sub": "s", "aud": "c", "exp": 2**31})
        await providers.validate(client, token, audience="c", leeway=0)


async def test_a_broken_reply_is_the_provider_being_unavailable(idp: BrokenIdp, call: str) -> None:
    providers = OidcProviders(EgressPolicy.of(origins=[idp.peer.base_url]), refresh_interval=0)
    with pytest.raises(OidcUnreachable):
        await exercise(providers, idp, call)
    # The same provider answering properly: the next call gets on (nothing broken was cached).
    idp.call = "none"
    if call == "token":
        tokens = await providers.exchange_code(
            OidcClient(tenant="t", issuer=idp.issuer, client_id="c", client_secret="s"),
            code="k",
            redirect_uri="http://x/cb",
            code_verifier="v",
        )
        assert tokens["id_token"] == "x.y.z"
    else:
        await exercise(providers, idp, call)


async def test_at_the_api_a_broken_key_set_is_a_503_with_retry_after(api: Api) -> None:
    idp = BrokenIdp("jwks", BROKEN["cut_with_the_connection"])
    with idp.peer:
        tenant = await api.new_tenant()
        configured = await api.client.put(
            "/v1/admin/sso/oidc",
            headers=tenant.admin,
            json={"issuer": idp.issuer, "client_id": "c"},
        )
        assert configured.status_code == 200, configured.text
        token = idp.keys.mint({"iss": idp.issuer, "sub": "s", "aud": "c", "exp": 2**31})
        me = await api.client.get(
            "/v1/me", headers={**bearer(token), "X-Bulwark-Tenant": tenant.slug}
        )
        assert_problem(me, 503, "idp_unavailable")
        assert me.headers["retry-after"]
