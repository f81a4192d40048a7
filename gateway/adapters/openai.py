"""OpenAI-compatible chat completions over HTTP (vLLM, TGI, llama.cpp server, Ollama, OpenAI).

Streaming is Server-Sent Events: ``data: {chunk}`` lines, ended by ``data: [DONE]``. TokenUsage is
asked for with ``stream_options.include_usage`` (servers that ignore it get estimated usage).

Replies are validated against the shapes below (the fields OpenAI's API reference marks as
always present, and nothing more, so that every compatible server passes): a completion must
carry a choice with a message whose ``content`` is a string or null, a reported ``usage`` must
carry both token counts, and a stream must end with ``[DONE]`` or a finish reason. Anything
else is ``bad_response``: the endpoint failed, and the gateway tries the next one. The same
shapes check what llama.cpp returns in process (``gateway.adapters.llamacpp``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.adapters.base import (
    Completion,
    Delta,
    ModelMessage,
    ProviderError,
    ProviderRequest,
    TokenUsage,
    failure_of_status,
)
from gateway.adapters.http import ProviderHttp
from kernel.egress import EgressPolicy


class _OpenAiShape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


Tokens = Annotated[int, Field(ge=0)]


class OpenAIUsage(_OpenAiShape):
    prompt_tokens: Tokens
    completion_tokens: Tokens

    def usage(self) -> TokenUsage:
        return TokenUsage(self.prompt_tokens, self.completion_tokens)


class OpenAIMessage(_OpenAiShape):
    content: str | None  # present, possibly null


class OpenAIChoice(_OpenAiShape):
    message: OpenAIMessage
    finish_reason: str | None = None


class OpenAICompletion(_OpenAiShape):
    choices: list[OpenAIChoice] = Field(min_length=1)
    usage: OpenAIUsage | None = None

    def completion(self) -> Completion:
        choice = self.choices[0]
        return Completion(
            choice.message.content or "",
            choice.finish_reason,
            self.usage.usage() if self.usage else None,
        )


class OpenAIDelta(_OpenAiShape):
    content: str | None = None


class OpenAIChunkChoice(_OpenAiShape):
    delta: OpenAIDelta | None = None
    finish_reason: str | None = None


class OpenAIChunk(_OpenAiShape):
    """One streamed chunk; the last may carry only ``usage`` (and no choice), and a server that
    fails mid-stream sends ``{"error": ...}`` instead."""

    choices: list[OpenAIChunkChoice] | None = None
    usage: OpenAIUsage | None = None
    error: Any = None

    def delta(self) -> Delta | None:
        if self.error is not None:
            raise ProviderError("server_error", "error event in stream")
        if self.choices is None:
            raise ProviderError("bad_response", "a stream chunk without choices")
        text, finish = "", None
        if self.choices:
            choice = self.choices[0]
            text = (choice.delta.content if choice.delta else None) or ""
            finish = choice.finish_reason
        usage = self.usage.usage() if self.usage else None
        if not text and finish is None and usage is None:
            return None
        return Delta(text=text, finish_reason=finish, usage=usage)


COMPLETION: TypeAdapter[OpenAICompletion] = TypeAdapter(OpenAICompletion)
CHUNK: TypeAdapter[OpenAIChunk] = TypeAdapter(OpenAIChunk)


def _messages(messages: tuple[ModelMessage, ...]) -> list[dict[str, str]]:
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
        return response.parse(COMPLETION, "chat completion").completion()

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        finished = False
        async with self._http.stream(self._body(request, stream=True), "chat stream") as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue  # SSE comments, event names, keep-alives
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = CHUNK.validate_json(data)
                except ValidationError:
                    raise ProviderError("bad_response", "malformed stream chunk") from None
                delta = chunk.delta()
                if delta is not None:
                    finished = finished or delta.finish_reason is not None
                    yield delta
        if not finished:
            # The connection closed mid-answer: what arrived is not the whole reply.
            raise ProviderError("bad_response", "stream ended before its end")

    async def aclose(self) -> None:
        await self._http.aclose()
