"""The console's one vendor client: httpx, calling this deployment's own REST API in process.

Every console action is one call of the public API, made with the signed-in person's Bulwark
session as its bearer credential. The console therefore holds no business rule of its own: the
API's guards, tenant scoping, validation, unit of work and audit events apply to a click exactly
as they apply to a curl, and a refusal comes back as the API's problem details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from litestar import Litestar

# Never leaves the process: the ASGI transport hands the request straight to the app.
_INTERNAL = "http://console.internal"


class ApiProblem(Exception):
    """A non-2xx answer of the API, with its problem details (RFC 9457)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        super().__init__(f"{status} {self.problem.get('code', '')}")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "Request refused.")

    @property
    def code(self) -> str:
        return str(self.problem.get("code") or "")


class ConsoleApi:
    """The REST API as the signed-in person: ``get``/``post``/``put``/``patch``/``delete``."""

    def __init__(self, app: Litestar, session_token: str, request_id: str | None = None) -> None:
        self._app = app
        self._headers = {"Authorization": f"Bearer {session_token}"}
        if request_id:
            self._headers["X-Request-ID"] = request_id

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); ``ApiProblem`` for any error status."""
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        # A task of its own: the nested request binds its own logging and tracing context
        # variables, which must not replace those of the console request around it.
        response = await asyncio.create_task(
            self._send(method, path, params=clean, json=json, files=files, data=data)
        )
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:200]}
            raise ApiProblem(response.status_code, problem if isinstance(problem, dict) else {})
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self._app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=_INTERNAL) as client:
            return await client.request(method, path, headers=self._headers, **kwargs)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return await self.call("POST", path, json=body, **kwargs)

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, json=body)

    async def patch(self, path: str, body: Any) -> Any:
        return await self.call("PATCH", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)
