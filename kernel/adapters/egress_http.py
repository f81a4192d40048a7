"""HTTP to tenant-configured URLs, through the egress guard (``kernel.egress``).

Two pieces, used by every caller of such a URL:

- ``GuardedResolver``: aiohttp's name resolution through the guard, so the addresses a
  connection uses are the ones checked (no second lookup that DNS rebinding could answer
  differently). The model gateway's connection pools use it directly.
- ``EgressFetcher``: small request/response exchanges with an identity provider (OIDC discovery,
  JWKS, the token endpoint; SAML metadata). No redirect is followed, the body is capped, and
  every failure — refused destination, connection, timeout, a status other than 2xx, a body that
  is not what was asked for — is one ``EgressUnavailable`` carrying a reason code, which the
  caller turns into its own 503 (or, at configuration time, a 422).

A session is made per exchange: these calls are rare (discovery and keys are cached by their
callers), and a session then never outlives the event loop that made it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from kernel.egress import EgressBlocked, EgressPolicy, EgressRefused

MAX_BODY = 1 << 20  # 1 MiB: discovery documents, key sets and federation metadata are far smaller


class GuardedResolver(AbstractResolver):
    """aiohttp's name resolution through the egress guard."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.policy.resolve(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class EgressUnavailable(Exception):
    """A tenant-configured URL that could not be used now. ``reason``: ``egress_refused:<why>``
    (the guard), ``connect``, ``timeout``, ``redirect``, ``status_<code>``, ``too_large``,
    ``malformed`` (not the JSON object or XML asked for)."""

    def __init__(self, reason: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body

    @property
    def refused(self) -> bool:
        return self.reason.startswith("egress_refused:")


@dataclass(frozen=True, slots=True)
class EgressFetcher:
    """Fetch from URLs a tenant configured, under ``policy`` (already widened for the tenant)."""

    policy: EgressPolicy
    timeout: float = 10.0
    max_body: int = MAX_BODY

    async def get(self, url: str, *, accept: str = "*/*") -> bytes:
        return await self._exchange("GET", url, headers={"Accept": accept})

    async def get_json(self, url: str) -> dict[str, Any]:
        return _json_object(await self.get(url, accept="application/json"))

    async def post_form(
        self, url: str, form: Mapping[str, str], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A form POST answered with a JSON object (an OAuth 2 token endpoint). A 4xx JSON
        error body is returned to the caller through ``EgressUnavailable.body``."""
        body = await self._exchange(
            "POST", url, data=dict(form), headers={"Accept": "application/json", **(headers or {})}
        )
        return _json_object(body)

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: Mapping[str, str] | None = None,
    ) -> bytes:
        try:
            self.policy.check_url(url)
        except EgressRefused as exc:
            raise EgressUnavailable(f"egress_refused:{exc.reason}") from None
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy), limit=4)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(
                    method, url, data=data, headers=dict(headers), allow_redirects=False
                ) as response,
            ):
                if response.content_length is not None and response.content_length > self.max_body:
                    raise EgressUnavailable("too_large", response.status)
                body = await response.content.read(self.max_body + 1)
                if len(body) > self.max_body:
                    raise EgressUnavailable("too_large", response.status)
                if 300 <= response.status < 400:
                    raise EgressUnavailable("redirect", response.status)
                if not 200 <= response.status < 300:
                    raise EgressUnavailable(f"status_{response.status}", response.status, body)
                return body
        except EgressUnavailable:
            raise
        except TimeoutError:
            raise EgressUnavailable("timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            blocked = exc if isinstance(exc, EgressBlocked) else exc.__cause__
            if isinstance(blocked, EgressBlocked):
                raise EgressUnavailable(f"egress_refused:{blocked.reason}") from None
            raise EgressUnavailable("connect") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EgressUnavailable("malformed") from None
    if not isinstance(value, dict):
        raise EgressUnavailable("malformed")
    return value
