"""OpenAI-compatible chat completions over HTTP (vLLM, TGI, llama.cpp server, Ollama, OpenAI).

Streaming is Server-Sent Events: ``data: {chunk}`` lines, ended by ``data: [DONE]``. Usage is
asked for with ``stream_options.include_usage`` (servers that ignore it get estimated usage).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from app.egress import EgressPolicy
from gateway.adapters.base import (
    ChatMessage,
    Completion,
    Delta,
    ProviderError,
    ProviderRequest,
    Usage,
    failure_of_status,
)
from gateway.adapters.http import ProviderHttp


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return None


def _messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class OpenAIProvider:
    """One OpenAI-compatible endpoint (``base_url`` up to, not including, ``/chat/completions``;
    a URL without a ``/v1`` suffix gets one)."""

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
        path = "/chat/completions" if root.endswith("/v1") else "/v1/chat/completions"
        self._http = ProviderHttp(
            root + path,
            {"Authorization": f"Bearer {api_key}"} if api_key else {},
            connect=connect_timeout,
            read=read_timeout,
            max_connections=max_connections,
            egress=egress,
        )

    def _body(self, request: ProviderRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request.messages),
            "max_tokens": request.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    async def complete(self, request: ProviderRequest) -> Completion:
        response = await self._http.post(self._body(request, stream=False))
        if response.status != 200:
            raise failure_of_status(
                response.status, response.headers.get("retry-after"), "chat completion"
            )
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
            return Completion(str(text), choice.get("finish_reason"), _usage(payload.get("usage")))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError("bad_response", "not an OpenAI chat completion") from None

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        async with self._http.stream(self._body(request, stream=True), "chat stream") as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                delta = self._delta(data)
                if delta is not None:
                    yield delta

    @staticmethod
    def _delta(data: str) -> Delta | None:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError("bad_response", "unparseable stream chunk") from None
        if not isinstance(chunk, dict):
            raise ProviderError("bad_response", "unexpected stream chunk")
        if "error" in chunk:
            raise ProviderError("server_error", "error event in stream")
        usage = _usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        text, finish = "", None
        if choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta") or {}
            text = str(delta.get("content") or "") if isinstance(delta, dict) else ""
            finish = choices[0].get("finish_reason")
        if not text and finish is None and usage is None:
            return None
        return Delta(text=text, finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        await self._http.aclose()
