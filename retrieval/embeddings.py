"""Dense embeddings: the ``Embedder`` port and the pooling every transformer adapter shares.

Adapters (``retrieval.adapters``) run a model; this module stays free of model runtimes so that
services and tests can depend on the port alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, one row per text, in input order."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


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


class SentenceVectors:
    """Embeddings of the sentences of retrieved chunks, kept in memory (least recently used
    first out) so that a chunk retrieved again costs no model time: the evidence test and the
    answer gate embed a few of its sentences on every request that retrieves it.

    Entries are keyed by tenant and a SHA-256 of the text (no text is kept), so one tenant can
    never tell, by timing, which sentences another's requests have embedded."""

    def __init__(self, embedder: Embedder, *, size: int = 20_000) -> None:
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[tuple[str, bytes], NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def for_tenant(self, tenant_id: str) -> Embedder:
        return _TenantVectors(self, tenant_id)

    def embed(self, tenant_id: str, texts: Sequence[str]) -> NDArray[np.float32]:
        keys = [(tenant_id, hashlib.sha256(t.encode()).digest()) for t in texts]
        found: dict[int, NDArray[np.float32]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                    found[i] = vector
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            computed = self.embedder.embed([texts[i] for i in missing])
            with self._lock:
                for i, vector in zip(missing, computed, strict=True):
                    found[i] = vector
                    self._vectors[keys[i]] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([found[i] for i in range(len(texts))])


class _TenantVectors(BaseEmbedder):
    def __init__(self, cache: SentenceVectors, tenant_id: str) -> None:
        self.cache = cache
        self.tenant_id = tenant_id
        self.model_id = cache.embedder.model_id
        self.dimension = cache.embedder.dimension

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.cache.embed(self.tenant_id, texts)
