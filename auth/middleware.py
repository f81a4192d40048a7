"""Bearer authentication for every route not marked ``exclude_from_auth``."""

from __future__ import annotations

from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from auth.context import TenantContext

EXCLUDE_FROM_AUTH = "exclude_from_auth"


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        runtime = connection.app.state.runtime
        principal = await runtime.authenticator.authenticate(
            connection.headers.get("authorization")
        )
        if isinstance(principal, TenantContext):
            structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
        else:
            structlog.contextvars.bind_contextvars(principal="operator")
        return AuthenticationResult(user=principal, auth=None)
