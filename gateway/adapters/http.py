"""The HTTP side of the model providers (OpenAI-compatible, Anthropic): one aiohttp
connection pool per endpoint, JSON posts and Server-Sent-Event line streams, and transport
failures as ``ProviderError``.

Every reply is checked before it is used: a JSON reply must say it is JSON and validate
against the shape its adapter declares (pydantic), an event stream must be one, and a body
cut short is ``bad_response``. A proxy's HTML page, an empty 200 or a truncated body is the
endpoint failing (the gateway falls back, then answers 503), never an unhandled error.

aiohttp rather than httpx on this path: a call through it adds about a millisecond less per
request on the gateway's hot path (its HTTP parser is C; no anyio layer), measured with the
same relay in front of the same model server (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import TypeAdapter, ValidationError
from yarl import URL

from gateway.adapters.base import (
    EGRESS_REFUSED_PREFIX,
    ProviderError,
    failure_of_status,
    traced,
)
from kernel.adapters.egress_http import GuardedResolver
from kernel.egress import EgressBlocked, EgressPolicy, EgressRefused

T = TypeVar("T")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def parse(self, shape: TypeAdapter[T], what: str) -> T:
        """The body as ``shape``: a JSON body that carries every field ``shape`` requires, or
        ``bad_response`` (not JSON, empty, truncated, or without those fields)."""
        kind = media_type(self.headers.get("content-type"))
        if kind != "application/json" and not kind.endswith("+json"):
            raise ProviderError("bad_response", f"{what}: not JSON ({kind or 'no type'})")
        try:
            return shape.validate_json(self.body)
        except ValidationError:
            raise ProviderError("bad_response", f"{what}: malformed or incomplete") from None


def transport_failure(exc: BaseException) -> ProviderError:
    if isinstance(exc, TimeoutError):  # aiohttp's read and connect timeouts included
        return ProviderError("timeout", type(exc).__name__)
    if isinstance(exc, aiohttp.ClientPayloadError):
        # The connection ended before the body did (short of its Content-Length, or a broken
        # chunked encoding): the endpoint answered, but not a whole reply.
        return ProviderError("bad_response", "truncated body")
    blocked = exc if isinstance(exc, EgressBlocked) else exc.__cause__
    if isinstance(blocked, EgressBlocked):
        return ProviderError("connect", f"{EGRESS_REFUSED_PREFIX}{blocked.reason}")
    return ProviderError("connect", type(exc).__name__)


class ProviderHttp:
    """One endpoint's connections: ``url`` is the full URL of its one operation. With an
    ``egress`` policy (a URL a tenant configured), every connection goes through the guard
    and no redirect is followed."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        connect: float,
        read: float,
        max_connections: int,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.url = URL(url)
        self.egress = egress
        # What the resolver never sees (scheme, credentials, a literal address) depends on the
        # URL and the policy alone: checked once, refused on every call.
        self._refused: str | None = None
        if egress is not None:
            try:
                egress.check_url(url)
            except EgressRefused as exc:
                self._refused = exc.reason
        self.headers = {"Content-Type": "application/json", **headers}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, in the loop that uses it (a session belongs to one loop).
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=self._max_connections,
                    resolver=GuardedResolver(self.egress) if self.egress else None,
                ),
                timeout=self._timeout,
            )
        return self._session

    def _guard(self) -> None:
        if self._refused is not None:
            raise ProviderError("connect", f"{EGRESS_REFUSED_PREFIX}{self._refused}")

    async def post(self, body: Mapping[str, Any]) -> Reply:
        self._guard()
        try:
            async with self._client().post(
                self.url,
                data=json.dumps(body).encode(),
                headers=traced(self.headers),
                allow_redirects=False,
            ) as response:
                return Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_failure(exc) from None

    @asynccontextmanager
    async def stream(self, body: Mapping[str, Any], what: str) -> AsyncIterator[AsyncIterator[str]]:
        """The lines of a ``200`` event stream (``failure_of_status`` for any other status)."""
        self._guard()
        try:
            async with self._client().post(
                self.url,
                data=json.dumps(body).encode(),
                headers=traced(self.headers),
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    await response.read()
                    raise failure_of_status(
                        response.status, response.headers.get("retry-after"), what
                    )
                if response.content_type != "text/event-stream":
                    await response.read()
                    raise ProviderError(
                        "bad_response", f"{what}: not an event stream ({response.content_type})"
                    )
                yield _lines(response.content)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_failure(exc) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    async for raw in content:
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
