"""Bearer authentication for every route not marked ``exclude_from_auth``."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from opentelemetry import trace

from kernel.tenancy import TenantContext

EXCLUDE_FROM_AUTH = "exclude_from_auth"
SESSION_COOKIE = "bulwark_session"
# Route opt: this state-changing route may also be authenticated by the session cookie.
ACCEPT_SESSION_COOKIE = "accept_session_cookie"


_tracer = trace.get_tracer("bulwark.auth")


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        runtime = connection.app.state.runtime
        # The session cookie (console) authenticates safe methods only: a state-changing request
        # must carry its credential in a header, which a cross-site form cannot set.
        # (A route may opt in with ``ACCEPT_SESSION_COOKIE``: logout.)
        handler = connection.scope.get("route_handler")
        cookie_ok = connection.scope.get("method") in ("GET", "HEAD") or bool(
            handler is not None and handler.opt.get(ACCEPT_SESSION_COOKIE)
        )
        cookie = connection.cookies.get(SESSION_COOKIE) if cookie_ok else None
        # The step's span only under a recorded request span (with none, it would record nothing).
        recording = trace.get_current_span().is_recording()
        with _tracer.start_as_current_span("auth") if recording else nullcontext() as span:
            principal = await runtime.authenticator.authenticate(
                connection.headers.get("authorization"),
                session_cookie=cookie,
                tenant_hint=connection.headers.get("x-bulwark-tenant"),
            )
            if span is not None:
                span.set_attribute(
                    "bulwark.auth.method",
                    principal.auth_method if isinstance(principal, TenantContext) else "operator",
                )
        if isinstance(principal, TenantContext):
            structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
        else:
            structlog.contextvars.bind_contextvars(principal="operator")
        return AuthenticationResult(user=principal, auth=None)
