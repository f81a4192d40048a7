"""Model providers fed replies that are not their protocol, by a real HTTP server on 127.0.0.1
(``tests.peers.raw_http``) — and llama.cpp, in process, by a stand-in for its ``Llama``.

Every such reply — empty, truncated, cut off with the connection, HTML, JSON without the fields a
completion must carry, a stream that is not one or that ends mid-event — is a ``ProviderError``
of kind ``bad_response``, a failure the gateway falls back on (and answers 503 for when no
endpoint is left), never another exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.adapters.anthropic import AnthropicProvider
from gateway.adapters.base import ChatProvider, Delta, ModelMessage, ProviderError, ProviderRequest
from gateway.adapters.llamacpp import LlamaCppProvider
from gateway.adapters.openai import OpenAIProvider
from tests.peers.raw_http import RawHttpPeer, RawReply, RawRequest, cut

REQUEST = ProviderRequest(
    model="m", messages=(ModelMessage("user", "What is the capital of France?"),), max_tokens=32
)
SSE = "text/event-stream"


def sse(*events: object) -> bytes:
    return b"".join(
        b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    )


def openai_chunk(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
).encode()
STREAM = sse(openai_chunk("Paris"), openai_chunk(" is"), openai_chunk(None, "stop"), b"[DONE]")

MESSAGE = json.dumps(
    {
        "type": "message",
        "content": [{"type": "text", "text": "Paris."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 7, "output_tokens": 2},
    }
).encode()
STARTED = sse(
    {"type": "message_start", "message": {"usage": {"input_tokens": 7}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris"}},
)
EVENTS = STARTED + sse(
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
)

# Replies to a completion that are not one, whichever provider is asked.
COMMON_COMPLETIONS = {
    "empty": RawReply(b""),
    "not_json": RawReply(b"Bad Gateway"),
    "html": RawReply(b"<html><body>Sign in to the proxy</body></html>", content_type="text/html"),
    "no_type": RawReply(COMPLETION, content_type=None),
    "a_list": RawReply(b"[]"),
    "an_object_of_nothing": RawReply(b"{}"),
}
OPENAI_COMPLETIONS = {
    **COMMON_COMPLETIONS,
    "truncated": RawReply(COMPLETION[: len(COMPLETION) // 2]),
    "cut_with_the_connection": cut(RawReply(COMPLETION), len(COMPLETION) // 2),
    "ends_at_close_cut_short": RawReply(COMPLETION[:40], length=-1),
    "no_choice": RawReply(b'{"choices": []}'),
    "no_message": RawReply(b'{"choices": [{"finish_reason": "stop"}]}'),
    "no_content": RawReply(b'{"choices": [{"message": {"role": "assistant"}}]}'),
    "content_not_text": RawReply(b'{"choices": [{"message": {"content": {"text": "x"}}}]}'),
    "usage_without_counts": RawReply(
        b'{"choices": [{"message": {"content": "x"}}], "usage": {"total_tokens": 9}}'
    ),
    "negative_usage": RawReply(
        b'{"choices": [{"message": {"content": "x"}}], '
        b'"usage": {"prompt_tokens": -1, "completion_tokens": 2}}'
    ),
}
ANTHROPIC_COMPLETIONS = {
    **COMMON_COMPLETIONS,
    "truncated": RawReply(MESSAGE[: len(MESSAGE) // 2]),
    "cut_with_the_connection": cut(RawReply(MESSAGE), len(MESSAGE) // 2),
    "content_not_blocks": RawReply(b'{"content": "Paris.", "stop_reason": "end_turn"}'),
    "text_block_without_text": RawReply(b'{"content": [{"type": "text"}]}'),
    "usage_without_counts": RawReply(b'{"content": [], "usage": {"input_tokens": 3}}'),
}
OPENAI_STREAMS = {
    "empty": RawReply(b"", content_type=SSE),
    "json_not_a_stream": RawReply(COMPLETION),
    "html": RawReply(b"<html>proxy</html>", content_type="text/html"),
    "cut_mid_event": RawReply(STREAM[:60], content_type=SSE, length=-1),
    "cut_between_events": RawReply(sse(openai_chunk("Paris")), content_type=SSE, length=-1),
    "cut_with_the_connection": cut(RawReply(STREAM, content_type=SSE), 60),
    "not_an_object": RawReply(sse(b"[1, 2]"), content_type=SSE),
    "no_choices": RawReply(sse({"id": "x"}, b"[DONE]"), content_type=SSE),
    "delta_not_an_object": RawReply(sse({"choices": [{"delta": "Paris"}]}), content_type=SSE),
}
ANTHROPIC_STREAMS = {
    "empty": RawReply(b"", content_type=SSE),
    "json_not_a_stream": RawReply(MESSAGE),
    "cut_mid_event": RawReply(EVENTS[:70], content_type=SSE, length=-1),
    "cut_between_events": RawReply(STARTED, content_type=SSE, length=-1),
    "cut_with_the_connection": cut(RawReply(EVENTS, content_type=SSE), 70),
    "not_an_event": RawReply(sse(b'"message_stop"'), content_type=SSE),
    "event_without_type": RawReply(sse({"delta": {}}), content_type=SSE),
    "text_delta_without_text": RawReply(
        sse({"type": "content_block_delta", "delta": {"type": "text_delta"}}), content_type=SSE
    ),
    "message_delta_without_delta": RawReply(
        sse({"type": "message_delta", "usage": {"output_tokens": 1}}), content_type=SSE
    ),
}


def served(reply: RawReply) -> RawHttpPeer:
    return RawHttpPeer(lambda _: reply)


def openai(url: str) -> OpenAIProvider:
    return OpenAIProvider(url, api_key=None, connect_timeout=2, read_timeout=5, max_connections=4)


def anthropic(url: str) -> AnthropicProvider:
    return AnthropicProvider(
        url, api_key=None, connect_timeout=2, read_timeout=5, max_connections=4
    )


async def streamed(provider: ChatProvider) -> list[Delta]:
    return [delta async for delta in provider.stream(REQUEST)]


async def assert_bad_response(provider: ChatProvider, *, stream: bool) -> None:
    try:
        with pytest.raises(ProviderError) as raised:
            if stream:
                await streamed(provider)
            else:
                await provider.complete(REQUEST)
        assert raised.value.kind == "bad_response", raised.value
        assert raised.value.falls_back
    finally:
        await provider.aclose()


@pytest.fixture
def well_formed() -> Iterator[RawHttpPeer]:
    """A peer that answers each path with its well-formed reply (the control)."""

    def answer(request: RawRequest) -> RawReply:
        stream = json.loads(request.body)["stream"]
        if request.path.endswith("/messages"):
            return RawReply(EVENTS, content_type=SSE) if stream else RawReply(MESSAGE)
        return RawReply(STREAM, content_type=SSE) if stream else RawReply(COMPLETION)

    with RawHttpPeer(answer) as peer:
        yield peer


async def test_well_formed_replies_from_this_peer_are_read(well_formed: RawHttpPeer) -> None:
    for provider in (openai(well_formed.base_url), anthropic(well_formed.base_url)):
        completion = await provider.complete(REQUEST)
        assert completion.text == "Paris." and completion.usage is not None
        assert "".join(d.text for d in await streamed(provider)).startswith("Paris")
        await provider.aclose()


@pytest.mark.parametrize("case", OPENAI_COMPLETIONS)
async def test_an_openai_completion_that_is_not_one_is_a_bad_response(case: str) -> None:
    with served(OPENAI_COMPLETIONS[case]) as peer:
        await assert_bad_response(openai(peer.base_url), stream=False)


@pytest.mark.parametrize("case", ANTHROPIC_COMPLETIONS)
async def test_an_anthropic_message_that_is_not_one_is_a_bad_response(case: str) -> None:
    with served(ANTHROPIC_COMPLETIONS[case]) as peer:
        await assert_bad_response(anthropic(peer.base_url), stream=False)


@pytest.mark.parametrize("case", OPENAI_STREAMS)
async def test_an_openai_stream_that_is_not_whole_is_a_bad_response(case: str) -> None:
    with served(OPENAI_STREAMS[case]) as peer:
        await assert_bad_response(openai(peer.base_url), stream=True)


@pytest.mark.parametrize("case", ANTHROPIC_STREAMS)
async def test_an_anthropic_stream_that_is_not_whole_is_a_bad_response(case: str) -> None:
    with served(ANTHROPIC_STREAMS[case]) as peer:
        await assert_bad_response(anthropic(peer.base_url), stream=True)


async def test_a_stream_that_finished_its_answer_may_end_without_its_end_marker() -> None:
    # The answer is whole (a finish reason came); only [DONE] / message_stop went missing.
    finished = sse(openai_chunk("Paris"), openai_chunk(None, "stop"))
    with served(RawReply(finished, content_type=SSE, length=-1)) as peer:
        provider = openai(peer.base_url)
        deltas = await streamed(provider)
        await provider.aclose()
    assert [d.text for d in deltas] == ["Paris", ""] and deltas[-1].finish_reason == "stop"


class StandInLlama:
    """What ``llama_cpp.Llama.create_chat_completion`` returned, scripted: llama.cpp runs in
    process, so its "reply" is the dict (or the chunks) it hands back."""

    def __init__(self, result: Any = None, chunks: list[Any] | None = None) -> None:
        self.result, self.chunks = result, chunks or []

    def create_chat_completion(self, *, stream: bool = False, **_: Any) -> Any:
        return iter(self.chunks) if stream else self.result

    def tokenize(self, text: bytes, **_: Any) -> list[int]:
        return list(range(len(text.split())))


LLAMA_RESULTS = {
    "empty": {},
    "no_choice": {"choices": []},
    "no_message": {"choices": [{"finish_reason": "stop"}]},
    "content_not_text": {"choices": [{"message": {"content": 42}}]},
    "not_a_dict": "Paris.",
}
LLAMA_STREAMS: dict[str, list[Any]] = {
    "no_chunk": [],
    "no_finish": [{"choices": [{"delta": {"content": "Paris"}, "finish_reason": None}]}],
    "chunk_not_a_dict": [None],
    "delta_not_a_dict": [{"choices": [{"delta": "Paris", "finish_reason": "stop"}]}],
}


def llama(stand_in: StandInLlama) -> LlamaCppProvider:
    provider = LlamaCppProvider(None, context_window=512, threads=1, max_concurrency=1)
    provider._llama = stand_in  # the loaded model: no GGUF is read
    return provider


@pytest.mark.parametrize("case", LLAMA_RESULTS)
async def test_a_llama_cpp_result_without_its_completion_is_a_bad_response(case: str) -> None:
    await assert_bad_response(llama(StandInLlama(result=LLAMA_RESULTS[case])), stream=False)


@pytest.mark.parametrize("case", LLAMA_STREAMS)
async def test_a_llama_cpp_stream_that_is_not_whole_is_a_bad_response(case: str) -> None:
    await assert_bad_response(llama(StandInLlama(chunks=LLAMA_STREAMS[case])), stream=True)


async def test_a_whole_llama_cpp_stream_is_read() -> None:
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "Paris."}, "finish_reason": None}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    ]
    provider = llama(StandInLlama(chunks=chunks))
    deltas = await streamed(provider)
    await provider.aclose()
    assert "".join(d.text for d in deltas) == "Paris." and deltas[-1].finish_reason == "stop"
