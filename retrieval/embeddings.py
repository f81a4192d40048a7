"""Dense embeddings: the ``Embedder`` port and the pooling every transformer adapter shares.

Adapters (``retrieval.adapters``) run a model; this module stays free of model runtimes so that
services and tests can depend on the port alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, one row per text, in input order."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class TokenVectors:
    """A text's contextual token vectors as the encoder read them (its special tokens left
    out), unit length, float16, with each token's character span in the text."""

    vectors: NDArray[np.float16]  # (tokens, dimension)
    spans: NDArray[np.int32]  # (tokens, 2): start and end offsets in the text

    def within(self, start: int, end: int) -> NDArray[np.float32] | None:
        """The vectors of the tokens inside ``text[start:end]``; ``None`` when the encoder did
        not read that far (a text longer than its window)."""
        if not len(self.spans) or end > self.spans[-1, 1]:
            return None
        inside = (self.spans[:, 0] >= start) & (self.spans[:, 1] <= end)
        return self.vectors[inside].astype(np.float32)


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that also gives the contextual vector of each token of a text."""

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]: ...


class BaseEmbedder:
    """Gives every CPU-bound embedder an ``embed_async`` that keeps the event loop free."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise NotImplementedError

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """``embed`` on a worker thread (inference releases the GIL), awaited from the loop."""
        return await asyncio.to_thread(self.embed, list(texts))


def mean_pool_normalize(
    hidden: NDArray[np.float32], attention_mask: NDArray[np.integer]
) -> NDArray[np.float32]:
    """Mean of the token vectors that the mask keeps, then L2-normalised (sentence-transformers'
    Pooling(mean) + Normalize). ``hidden`` is (batch, tokens, dim), the mask (batch, tokens)."""
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    return l2_normalize(summed / counts)


def l2_normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: NDArray[np.float32] = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return normalised


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Recent(Generic[_K, _V]):
    """A least-recently-used map of at most ``size`` entries, safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(
        self, keys: Sequence[_K], compute: Callable[[list[int]], Sequence[_V]]
    ) -> list[_V]:
        """The value of each key, computing those missing together (``compute`` gets their
        places in ``keys``)."""
        found: dict[int, _V] = {}
        with self._lock:
            for i, key in enumerate(keys):
                value = self._entries.get(key)
                if value is not None:
                    self._entries.move_to_end(key)
                    found[i] = value
        missing = [i for i in range(len(keys)) if i not in found]
        if missing:
            computed = compute(missing)
            with self._lock:
                for i, value in zip(missing, computed, strict=True):
                    found[i] = value
                    self._entries[keys[i]] = value
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return [found[i] for i in range(len(keys))]


class SentenceVectors:
    """Embeddings of the sentences of retrieved chunks, kept in memory (least recently used
    first out) so that a chunk retrieved again costs no model time: the evidence test and the
    answer gate embed a few of its sentences on every request that retrieves it. The token
    vectors of whole chunks, which the extractive answer's ranker reads, are kept the same way
    (fewer of them: ``token_size`` texts, ~150 KB each for a chunk of 200 tokens, ~75 MB at
    most).

    Entries are keyed by tenant and a SHA-256 of the text (no text is kept), so one tenant can
    never tell, by timing, which sentences another's requests have embedded."""

    def __init__(self, embedder: Embedder, *, size: int = 20_000, token_size: int = 512) -> None:
        self.embedder = embedder
        self.size = size
        self._vectors: _Recent[tuple[str, bytes], NDArray[np.float32]] = _Recent(size)
        self._tokens: _Recent[tuple[str, bytes], TokenVectors] = _Recent(token_size)

    def for_tenant(self, tenant_id: str) -> Embedder:
        """The cache as one tenant's embedder; it gives token vectors only when the model
        does (the ranker then reads its token alignment, else it does without)."""
        if isinstance(self.embedder, TokenEmbedder):
            return _TenantTokenVectors(self, tenant_id)
        return _TenantVectors(self, tenant_id)

    def embed(self, tenant_id: str, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)

        def compute(missing: list[int]) -> list[NDArray[np.float32]]:
            return list(self.embedder.embed([texts[i] for i in missing]))

        return np.stack(self._vectors.get_or_compute(_keys(tenant_id, texts), compute))

    def embed_tokens(self, tenant_id: str, texts: Sequence[str]) -> list[TokenVectors]:
        inner = self.embedder
        if not isinstance(inner, TokenEmbedder):
            raise TypeError(f"{inner.model_id} gives no token vectors")
        return self._tokens.get_or_compute(
            _keys(tenant_id, texts), lambda missing: inner.embed_tokens([texts[i] for i in missing])
        )


def _keys(tenant_id: str, texts: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(tenant_id, hashlib.sha256(t.encode()).digest()) for t in texts]


class _TenantVectors(BaseEmbedder):
    def __init__(self, cache: SentenceVectors, tenant_id: str) -> None:
        self.cache = cache
        self.tenant_id = tenant_id
        self.model_id = cache.embedder.model_id
        self.dimension = cache.embedder.dimension

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.cache.embed(self.tenant_id, texts)


class _TenantTokenVectors(_TenantVectors):
    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        return self.cache.embed_tokens(self.tenant_id, texts)
