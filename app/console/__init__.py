"""The tenant admin console: server-rendered pages under ``/console``, in the API's own app.

Pages are Jinja templates rendered by Litestar; the few things that need a script (upload
progress, refreshing a page while work runs) use one static file, and charts are SVG drawn on
the server. Every action is a call of the REST API as the signed-in person (``adapters.py``).
Security: the session cookie set by the tenant's OIDC or SAML sign-in; a double-submit CSRF token
on every state-changing form (Litestar's CSRF middleware, on this router only: the API itself
takes credentials in headers, which a cross-site form cannot set); a strict
Content-Security-Policy (scripts and styles only as static files of this package).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from litestar import Router
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.console.controllers import CONSOLE_CONTROLLERS, EXCEPTION_HANDLERS, SECURITY_HEADERS
from app.console.session import PREFIX
from auth.middleware import EXCLUDE_FROM_AUTH
from kernel.settings import IdentitySettings

HERE = Path(__file__).parent
CSRF_COOKIE = "bulwark_csrf"
TEMPLATES = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def console_routers(identity: IdentitySettings, pepper: str) -> list[Router]:
    """The console's pages (CSRF-checked) and its static files."""
    csrf = CSRFConfig(
        # Derived, not stored: the deployment's secret key, for this purpose only.
        secret=hmac.new(pepper.encode(), b"bulwark-console-csrf", hashlib.sha256).hexdigest(),
        cookie_name=CSRF_COOKIE,
        cookie_path=PREFIX,
        cookie_secure=identity.cookie_secure,
        cookie_httponly=True,
        cookie_samesite="lax",
        header_name="x-csrf-token",
    )
    pages = Router(
        path=PREFIX,
        route_handlers=CONSOLE_CONTROLLERS,
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        exception_handlers=EXCEPTION_HANDLERS,
        response_headers=SECURITY_HEADERS,
        # The console checks its own session cookie (``session.py``), and sends people without
        # one to their tenant's sign-in page rather than answering 401.
        opt={EXCLUDE_FROM_AUTH: True},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path=f"{PREFIX}/static",
        directories=[HERE / "static"],
        opt={EXCLUDE_FROM_AUTH: True},
        include_in_schema=False,
    )
    return [pages, static]


__all__ = ["TEMPLATES", "console_routers"]
