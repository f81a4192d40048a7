"""Anthropic's Messages API (``POST /v1/messages``), streaming included.

System messages become the top-level ``system`` field. Streaming events: ``message_start``
(input usage), ``content_block_delta`` (``text_delta``), ``message_delta`` (output usage, stop
reason), ``message_stop``; an ``error`` event (e.g. ``overloaded_error``) counts as a server error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from app.egress import EgressPolicy
from gateway.adapters.base import (
    Completion,
    Delta,
    ProviderError,
    ProviderRequest,
    Usage,
    failure_of_status,
)
from gateway.adapters.http import ProviderHttp

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        egress: EgressPolicy | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        path = "/messages" if root.endswith("/v1") else "/v1/messages"
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = ProviderHttp(
            root + path,
            headers,
            connect=connect_timeout,
            read=read_timeout,
            max_connections=max_connections,
            egress=egress,
        )

    @staticmethod
    def _body(request: ProviderRequest, *, stream: bool) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [
            {"role": m.role, "content": m.content}
            for m in request.messages
            if m.role in ("user", "assistant")
        ]
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "stream": stream,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        return body

    async def complete(self, request: ProviderRequest) -> Completion:
        response = await self._http.post(self._body(request, stream=False))
        if response.status != 200:
            raise failure_of_status(
                response.status, response.headers.get("retry-after"), "messages"
            )
        try:
            payload = response.json()
            text = "".join(
                str(block.get("text") or "")
                for block in payload["content"]
                if block.get("type") == "text"
            )
            raw = payload.get("usage") or {}
            usage = Usage(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0))
            return Completion(text, payload.get("stop_reason"), usage if raw else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProviderError("bad_response", "not an Anthropic message") from None

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        input_tokens = 0
        async with self._http.stream(self._body(request, stream=True), "messages") as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:].strip())
                except ValueError:
                    raise ProviderError("bad_response", "unparseable event") from None
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "message_start":
                    usage = (event.get("message") or {}).get("usage") or {}
                    input_tokens = int(usage.get("input_tokens") or 0)
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield Delta(text=str(delta["text"]))
                elif kind == "message_delta":
                    usage = event.get("usage") or {}
                    yield Delta(
                        finish_reason=(event.get("delta") or {}).get("stop_reason"),
                        usage=Usage(input_tokens, int(usage.get("output_tokens") or 0)),
                    )
                elif kind == "message_stop":
                    return
                elif kind == "error":
                    raise ProviderError("server_error", "error event in stream")

    async def aclose(self) -> None:
        await self._http.aclose()
