"""What every console page shares: the navigation (each page behind its roles), rendering, the
security headers, and the error pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from app.console.adapters import ApiProblem
from app.console.forms import FormError
from app.console.session import (
    PREFIX,
    ConsoleForbidden,
    ConsoleNotFound,
    ConsoleUser,
    SignInRequired,
    provide_console_user,
)
from kernel.tenancy import Role

ADMIN = (Role.TENANT_ADMIN,)
AUDITORS = (Role.TENANT_ADMIN, Role.COMPLIANCE_OFFICER)
OFFICER = (Role.COMPLIANCE_OFFICER,)
ANYONE: tuple[Role, ...] = ()

# A strict policy: scripts and styles only from this origin's static files, nothing inline,
# no plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]
USER_DEPENDENCY = {"user": Provide(provide_console_user)}


@dataclass(frozen=True, slots=True)
class Page:
    key: str
    label: str
    roles: tuple[Role, ...]


PAGES = (
    Page("overview", "Overview", ADMIN),
    Page("users", "Users and groups", ADMIN),
    Page("documents", "Documents", ADMIN),
    Page("sso", "Sign-in and SCIM", ADMIN),
    Page("dlp", "DLP policy", ADMIN),
    Page("models", "Models and quotas", ADMIN),
    Page("kms", "Keys", ADMIN),
    Page("audit", "Audit log", AUDITORS),
    Page("sar", "Subject access", OFFICER),
    Page("playground", "Playground", ANYONE),
)
ROLES = {page.key: page.roles for page in PAGES}

# Messages after a successful form (Post/Redirect/Get): fixed texts, never echoed input.
DONE = {
    "acl": "The document's access list was saved.",
    "acl_hidden": "The access list was saved; it no longer includes you, so the document is "
    "hidden from you now.",
    "deleted": "The document was deleted.",
    "uploaded": "The document was uploaded; ingestion runs in the background.",
    "user": "The user was saved.",
    "mappings": "The role mappings were saved.",
    "oidc": "The OIDC settings were saved.",
    "saml": "The SAML settings were saved.",
    "signin": "Test sign-in succeeded: you are signed in again through the tenant's IdP.",
    "dlp": "The DLP policy was saved.",
    "policy": "The model policy was saved.",
    "quotas": "The quotas were saved.",
    "kms": "The key settings were saved.",
    "rotated": "A new data-key version is current.",
}


def url(user_or_slug: ConsoleUser | str, *parts: str) -> str:
    slug = user_or_slug if isinstance(user_or_slug, str) else user_or_slug.slug
    return "/".join([PREFIX, slug, *parts])


def page(
    user: ConsoleUser,
    key: str,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    request: Request[Any, Any, Any] | None = None,
) -> Template:
    """Render a page after checking the person may see it."""
    user.require(*ROLES[key])
    done = request.query_params.get("done") if request is not None else None
    return Template(
        template_name=template,
        context={
            "user": user,
            "roles": sorted(role.value.replace("_", " ") for role in user.ctx.roles),
            "slug": user.slug,
            "base": url(user),
            "nav": [p for p in PAGES if user.can(*p.roles)],
            "active": key,
            "done": DONE.get(done or ""),
            **context,
        },
        status_code=status_code,
    )


def home_of(user: ConsoleUser) -> str:
    first = next(p for p in PAGES if user.can(*p.roles))  # the playground is open to all
    return url(user, first.key)


def done(user: ConsoleUser, *parts: str, message: str) -> Redirect:
    return Redirect(f"{url(user, *parts)}?done={message}", status_code=303)


def _error_page(
    request: Request[Any, Any, Any], status: int, title: str, detail: str
) -> Response[Any]:
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail, "console": PREFIX},
        status_code=status,
        headers={header.name: str(header.value) for header in SECURITY_HEADERS},
    )


def not_found(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    return _error_page(request, 404, "Not found", "There is no such page in this console.")


def forbidden(request: Request[Any, Any, Any], exc: ConsoleForbidden) -> Response[Any]:
    needed = " or ".join(role.value.replace("_", " ") for role in exc.roles)
    return _error_page(request, 403, "Not allowed", f"This page is for the {needed} role.")


def sign_in(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    return Redirect(f"{PREFIX}/{exc.slug}", status_code=303)


def api_problem(request: Request[Any, Any, Any], exc: ApiProblem) -> Response[Any]:
    """An API refusal outside a form (a page's own read): its status and detail, as a page."""
    if exc.status == 404:
        return not_found(request, exc)
    return _error_page(request, exc.status, str(exc.problem.get("title") or "Refused"), exc.detail)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ConsoleNotFound: not_found,
    ConsoleForbidden: forbidden,
    SignInRequired: sign_in,
    ApiProblem: api_problem,
}


def refusal(exc: ApiProblem | FormError) -> tuple[str, int]:
    """A form's refusal: what to say on the page and with which status."""
    if isinstance(exc, FormError):
        return str(exc), 422
    errors = exc.problem.get("errors")
    detail = exc.detail
    if isinstance(errors, list) and errors:
        detail += " " + "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    return detail, exc.status
