"""The way in: pick a tenant, sign in through its own IdP (OIDC or SAML), and sign out."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.console.controllers._base import (
    USER_DEPENDENCY,
    home_of,
    url,
)
from app.console.session import PREFIX, ConsoleUser, tenant_of
from app.dependencies import get_runtime
from auth.middleware import SESSION_COOKIE
from auth.sso import enabled_sign_in_methods

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TenantQuery = Annotated[str | None, QueryParameter(max_length=64)]


class ConsoleEntryController(Controller):
    path = "/"

    @get("/", summary="Choose a tenant")
    async def choose_tenant(self, tenant: TenantQuery = None) -> Template | Redirect:
        slug = (tenant or "").strip().lower()
        if slug and _SLUG.match(slug):
            return Redirect(f"{PREFIX}/{slug}", status_code=303)
        return Template(
            template_name="choose.html", context={"invalid": bool(slug), "console": PREFIX}
        )

    @get("/{tenant:str}", summary="Sign in to a tenant's console through its IdP")
    async def sign_in(self, request: Request[Any, Any, Any], tenant: FromPath[str]) -> Template:
        route = await tenant_of(request, tenant)
        runtime = get_runtime(request)
        ctx = runtime.system.context(route)
        async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
            methods = await enabled_sign_in_methods(session, ctx)
        back = url(route.slug, "home")
        return Template(
            template_name="sign_in.html",
            context={
                "slug": route.slug,
                "console": PREFIX,
                "links": [
                    (method.upper(), f"/auth/{route.slug}/{method}/login?return_to={quote(back)}")
                    for method in methods
                ],
            },
        )


class ConsoleSessionController(Controller):
    path = "/{tenant:str}"
    dependencies = USER_DEPENDENCY

    @get("/home", summary="The first console page this person may see")
    async def home(self, user: NamedDependency[ConsoleUser]) -> Redirect:
        return Redirect(home_of(user), status_code=303)

    @post("/logout", status_code=303, summary="Sign out: revoke the session, drop the cookie")
    async def logout(self, user: NamedDependency[ConsoleUser]) -> Redirect:
        await user.api.post("/auth/logout")
        response = Redirect(url(user), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
