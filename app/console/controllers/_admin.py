"""Tenant-admin pages: overview, users and groups, sign-in and SCIM, DLP, models and quotas, keys.

Each page reads through the REST API as the signed-in admin and each form is one API call; a
refusal is shown on the page with the API's own words and status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.console import forms
from app.console.adapters import ApiProblem, ConsoleApi
from app.console.controllers._base import ADMIN, USER_DEPENDENCY, done, page, refusal, url
from app.console.services import overview
from app.console.session import ConsoleUser

Form = dict[str, Any]
# What PUT /v1/admin/dlp takes (its GET adds the supported types, version and timestamps).
DLP_FIELDS = ("entities", "custom", "allow_list", "tag_classification", "injection")


async def _form(request: Request[Any, Any, Any]) -> tuple[Form, dict[str, list[str]]]:
    data = await request.form()
    single = {key: data.get(key) for key in data}
    multi = {key: [str(v) for v in data.getall(key)] for key in data}
    return single, multi


async def _maybe(call: Awaitable[Any]) -> Any:
    """A settings read that may legitimately be absent (404: not configured yet)."""
    try:
        return await call
    except ApiProblem as exc:
        if exc.status == 404:
            return None
        raise


Fields = dict[str, list[str]]
# One form's API call, from its fields: (api, single values, every value of each field).
Call = Callable[[ConsoleApi, Form, Fields], Awaitable[Any]]
Context = Callable[[ConsoleUser], Awaitable[dict[str, Any]]]


async def _save(
    request: Request[Any, Any, Any],
    user: ConsoleUser,
    key: str,
    context: Context,
    call: Call,
    message: str,
) -> Template | Redirect:
    """One admin form: its fields shaped into one API call, then back to the page (a fixed
    message), or, refused, the page again with the reason and the API's status."""
    user.require(*ADMIN)
    form, multi = await _form(request)
    try:
        await call(user.api, form, multi)
    except (ApiProblem, forms.FormError) as exc:
        detail, status = refusal(exc)
        context_now = {**await context(user), "error": detail}
        return page(user, key, f"{key}.html", context_now, status_code=status)
    return done(user, key, message=message)


async def _users(user: ConsoleUser) -> dict[str, Any]:
    users = (await user.api.get("/v1/admin/users", limit=500))["items"]
    groups = (await user.api.get("/v1/admin/groups", limit=500))["items"]
    mappings = await user.api.get("/v1/admin/role-mappings")
    names = {g["id"]: g["name"] for g in groups}
    for item in users:
        item["group_names"] = sorted(names.get(g, g) for g in item["group_ids"])
        item["attribute_lines"] = "\n".join(
            f"{k}={','.join(v)}" for k, v in sorted(item["attributes"].items())
        )
    emails = {u["id"]: u["email"] for u in users}
    for group in groups:
        group["members"] = sorted(emails.get(m, m) for m in group["member_ids"])
    return {
        "users": users,
        "groups": groups,
        "mappings": mappings,
        "mapping_lines": "\n".join(f"{m['idp_group']} = {m['role']}" for m in mappings["mappings"]),
        "roles": ["tenant_admin", "compliance_officer", "member"],
    }


async def _sso(user: ConsoleUser) -> dict[str, Any]:
    oidc = await _maybe(user.api.get("/v1/admin/sso/oidc"))
    saml = await _maybe(user.api.get("/v1/admin/sso/saml"))
    back = url(user, "sso") + "?done=signin"
    return {
        "oidc": oidc,
        "saml": saml,
        "saml_pem": "".join(c["pem"] for c in saml["certificates"]) if saml else "",
        "metadata_url": f"/auth/{user.slug}/saml/metadata",
        "scim_base": f"/scim/v2/{user.slug}",
        "tests": [
            (method.upper(), f"/auth/{user.slug}/{method}/login?return_to={quote(back)}")
            for method, config in (("oidc", oidc), ("saml", saml))
            if config and config["enabled"]
        ],
    }


async def _dlp(user: ConsoleUser, text: str | None = None) -> dict[str, Any]:
    read = await user.api.get("/v1/admin/dlp")
    editable = {key: read[key] for key in DLP_FIELDS}
    return {
        "policy": text if text is not None else json.dumps(editable, indent=2),
        "supported": read["supported_entities"],
        "configured": read["configured"],
        "version": read["version"],
    }


async def _put_dlp(api: ConsoleApi, form: Form, _: Fields) -> Any:
    try:
        body = json.loads(forms.text(form, "policy"))
    except ValueError as exc:
        raise forms.FormError(f"The policy is not valid JSON: {exc}") from None
    return await api.put("/v1/admin/dlp", body)


async def _models(user: ConsoleUser) -> dict[str, Any]:
    return {
        "policy": await user.api.get("/v1/admin/model-policy"),
        "quotas": await user.api.get("/v1/admin/quotas"),
        "by_tier": await user.api.get("/v1/usage", group_by="tier"),
        "by_user": await user.api.get("/v1/usage", group_by="user"),
        "tiers": ["small", "mid", "frontier"],
    }


async def _kms(user: ConsoleUser) -> dict[str, Any]:
    return {"kms": await user.api.get("/v1/admin/kms")}


class ConsoleAdminController(Controller):
    path = "/{tenant:str}"
    dependencies = USER_DEPENDENCY

    @get("/overview", summary="Requests, tokens, cost, cache, fallbacks and guardrail trips")
    async def overview_page(self, user: NamedDependency[ConsoleUser]) -> Template:
        user.require(*ADMIN)
        return page(user, "overview", "overview.html", {"overview": await overview(user.api)})

    # -- users and groups ---------------------------------------------------------------------
    @get("/users", summary="Users and groups as provisioned, role mappings, clearance")
    async def users_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "users", "users.html", await _users(user), request=request)

    @post("/users/{user_id:uuid}", summary="Change a user's roles, clearance and attributes")
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[ConsoleUser],
        user_id: FromPath[uuid.UUID],
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, multi: Fields) -> Any:
            body = forms.user_update(form, multi.get("roles", []))
            return await api.patch(f"/v1/admin/users/{user_id}", body)

        return await _save(request, user, "users", _users, call, "user")

    @post("/role-mappings", summary="Replace the IdP group to role mappings")
    async def update_mappings(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, _: Fields) -> Any:
            return await api.put("/v1/admin/role-mappings", forms.role_mappings(form))

        return await _save(request, user, "users", _users, call, "mappings")

    # -- sign-in (OIDC, SAML) and SCIM ----------------------------------------------------------
    @get("/sso", summary="OIDC and SAML settings, SP metadata, test sign-in, SCIM token")
    async def sso_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "sso", "sso.html", await _sso(user), request=request)

    @post("/sso/oidc", summary="Save the OIDC settings")
    async def save_oidc(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, _: Fields) -> Any:
            return await api.put("/v1/admin/sso/oidc", forms.oidc(form))

        return await _save(request, user, "sso", _sso, call, "oidc")

    @post("/sso/saml", summary="Save the SAML settings")
    async def save_saml(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, _: Fields) -> Any:
            return await api.put("/v1/admin/sso/saml", forms.saml(form))

        return await _save(request, user, "sso", _sso, call, "saml")

    @post("/scim-token", summary="Issue the SCIM token (shown once; the previous one is revoked)")
    async def scim_token(self, user: NamedDependency[ConsoleUser]) -> Template:
        user.require(*ADMIN)
        issued = await user.api.post("/v1/admin/scim-token")
        return page(user, "sso", "sso.html", {**await _sso(user), "scim_token": issued})

    # -- DLP ------------------------------------------------------------------------------------
    @get("/dlp", summary="The tenant's DLP policy")
    async def dlp_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "dlp", "dlp.html", await _dlp(user), request=request)

    @post("/dlp", summary="Replace the DLP policy")
    async def save_dlp(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        form, _ = await _form(request)
        text = forms.text(form, "policy")  # shown again as typed if refused

        async def context(user: ConsoleUser) -> dict[str, Any]:
            return await _dlp(user, text)

        return await _save(request, user, "dlp", context, _put_dlp, "dlp")

    # -- models and quotas ----------------------------------------------------------------------
    @get("/models", summary="Model policy, quotas and the month's usage")
    async def models_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "models", "models.html", await _models(user), request=request)

    @post("/models/policy", summary="Save the model tier policy")
    async def save_policy(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, multi: Fields) -> Any:
            return await api.put("/v1/admin/model-policy", forms.model_policy(form, multi))

        return await _save(request, user, "models", _models, call, "policy")

    @post("/models/quotas", summary="Save the quotas and rate limits")
    async def save_quotas(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, _: Fields) -> Any:
            return await api.put("/v1/admin/quotas", forms.quotas(form))

        return await _save(request, user, "models", _models, call, "quotas")

    # -- keys -----------------------------------------------------------------------------------
    @get("/kms", summary="The tenant's KMS key and data-key versions")
    async def kms_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "kms", "kms.html", await _kms(user), request=request)

    @post("/kms", summary="Bring your own key")
    async def save_kms(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, form: Form, _: Fields) -> Any:
            return await api.put("/v1/admin/kms", forms.kms(form))

        return await _save(request, user, "kms", _kms, call, "kms")

    @post("/kms/rotate", summary="Rotate: a new data-key version")
    async def rotate(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        async def call(api: ConsoleApi, _: Form, __: Fields) -> Any:
            return await api.post("/v1/admin/kms/rotate")

        return await _save(request, user, "kms", _kms, call, "rotated")
