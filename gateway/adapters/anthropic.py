"""Anthropic's Messages API (``POST /v1/messages``), streaming included.

System messages become the top-level ``system`` field. Streaming events: ``message_start``
(input usage), ``content_block_delta`` (``text_delta``), ``message_delta`` (output usage, stop
reason), ``message_stop``; an ``error`` event (e.g. ``overloaded_error``) counts as a server error.

Replies are validated against the shapes below (what the Messages API always sends): a message
must carry its content blocks, a text block its text, reported usage both token counts, and a
stream must end with ``message_stop`` or a stop reason. Event types this adapter does not know
are skipped, as Anthropic's versioning policy asks; a known one without its fields, or anything
that is not an event, is ``bad_response``: the endpoint failed, and the gateway falls back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from gateway.adapters.base import (
    Completion,
    Delta,
    ProviderError,
    ProviderRequest,
    TokenUsage,
    failure_of_status,
)
from gateway.adapters.http import ProviderHttp
from kernel.egress import EgressPolicy

ANTHROPIC_VERSION = "2023-06-01"


class _AnthropicShape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


Tokens = Annotated[int, Field(ge=0)]


class _Block(_AnthropicShape):
    """A content block (or a streamed block delta): ``text``/``text_delta`` carry their text."""

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_blocks_carry_text(self) -> _Block:
        if self.type in ("text", "text_delta") and self.text is None:
            raise ValueError(f"a {self.type} block without its text")
        return self


class _Usage(_AnthropicShape):
    input_tokens: Tokens
    output_tokens: Tokens


class _Message(_AnthropicShape):
    content: list[_Block]
    stop_reason: str | None = None
    usage: _Usage | None = None


class _StartUsage(_AnthropicShape):
    input_tokens: Tokens = 0


class _StartMessage(_AnthropicShape):
    usage: _StartUsage | None = None


class _MessageStart(_AnthropicShape):
    message: _StartMessage


class _BlockDelta(_AnthropicShape):
    delta: _Block


class _StopDelta(_AnthropicShape):
    stop_reason: str | None = None


class _OutputUsage(_AnthropicShape):
    output_tokens: Tokens


class _MessageDelta(_AnthropicShape):
    delta: _StopDelta
    usage: _OutputUsage | None = None


_MESSAGE: TypeAdapter[_Message] = TypeAdapter(_Message)
_MESSAGE_START: TypeAdapter[_MessageStart] = TypeAdapter(_MessageStart)
_BLOCK_DELTA: TypeAdapter[_BlockDelta] = TypeAdapter(_BlockDelta)
_MESSAGE_DELTA: TypeAdapter[_MessageDelta] = TypeAdapter(_MessageDelta)


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
        message = response.parse(_MESSAGE, "messages")
        text = "".join(block.text or "" for block in message.content if block.type == "text")
        usage = message.usage
        return Completion(
            text,
            message.stop_reason,
            TokenUsage(usage.input_tokens, usage.output_tokens) if usage else None,
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        input_tokens = 0
        stopped = False
        async with self._http.stream(self._body(request, stream=True), "messages") as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue  # event names, comments, keep-alives
                event = _event(line[5:].strip())
                kind = event["type"]
                try:
                    if kind == "message_start":
                        start = _MESSAGE_START.validate_python(event).message.usage
                        input_tokens = start.input_tokens if start else 0
                    elif kind == "content_block_delta":
                        delta = _BLOCK_DELTA.validate_python(event).delta
                        if delta.type == "text_delta" and delta.text:
                            yield Delta(text=delta.text)
                    elif kind == "message_delta":
                        change = _MESSAGE_DELTA.validate_python(event)
                        stopped = stopped or change.delta.stop_reason is not None
                        yield Delta(
                            finish_reason=change.delta.stop_reason,
                            usage=TokenUsage(
                                input_tokens, change.usage.output_tokens if change.usage else 0
                            ),
                        )
                    elif kind == "message_stop":
                        return
                    elif kind == "error":
                        raise ProviderError("server_error", "error event in stream")
                except ValidationError:
                    raise ProviderError("bad_response", f"malformed {kind} event") from None
        if not stopped:
            # The connection closed mid-answer: what arrived is not the whole reply.
            raise ProviderError("bad_response", "stream ended before message_stop")

    async def aclose(self) -> None:
        await self._http.aclose()


def _event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise ProviderError("bad_response", "unparseable event") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProviderError("bad_response", "not a Messages stream event")
    return event
