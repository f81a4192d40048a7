"""The console as a browser without JavaScript uses it, over the test client: a SAML sign-in
(real signed responses from ``tests/saml_idp.py``), then pages and CSRF-protected form posts
carrying the cookies a browser would carry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.saml_idp import Assertion, TestIdp, configure, post_acs, set_cookies, start_login
from tests.support.tenants import Api, TenantHandle

_CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class ConsoleSession:
    api: Api
    slug: str
    session: str
    csrf_cookie: str = ""
    csrf_token: str = ""

    def cookies(self, *, csrf: bool = True) -> dict[str, str]:
        jar = f"bulwark_session={self.session}"
        if csrf and self.csrf_cookie:
            jar += f"; bulwark_csrf={self.csrf_cookie}"
        return {"Cookie": jar}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        response = await self.api.client.get(path, params=params, headers=self.cookies())
        self._remember(response)
        self.api.client.cookies.clear()  # only what this session sends, never the jar
        return response

    async def post(self, path: str, form: dict[str, Any] | None = None) -> httpx.Response:
        if not self.csrf_token:
            await self.get(f"/console/{self.slug}/playground")
        data = {**(form or {}), "_csrf_token": self.csrf_token}
        response = await self.api.client.post(path, data=data, headers=self.cookies())
        self.api.client.cookies.clear()
        return response

    def _remember(self, response: httpx.Response) -> None:
        cookie = set_cookies(response).get("bulwark_csrf")
        if cookie:
            self.csrf_cookie = cookie["value"]
        found = _CSRF_FIELD.search(response.text)
        if found:
            self.csrf_token = found.group(1)


async def saml_sign_in(
    api: Api, tenant: TenantHandle, email: str, idp: TestIdp | None = None
) -> ConsoleSession:
    """Sign ``email`` in to ``tenant`` through SAML (configuring a test IdP if none given)."""
    idp = idp or TestIdp()
    sp, _ = await configure(api, tenant, idp)
    login = await start_login(api, tenant.slug, return_to=f"/console/{tenant.slug}/home")
    response = idp.encoded(sp, login.request_id, Assertion(attributes={"email": [email]}))
    done = await post_acs(
        api, tenant.slug, response, state=login.state_cookie, relay_state=login.relay_state
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/console/{tenant.slug}/home"
    token = set_cookies(done)["bulwark_session"]["value"]
    api.client.cookies.clear()
    return ConsoleSession(api, tenant.slug, token)
