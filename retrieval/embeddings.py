"""Dense embeddings: the ``Embedder`` port and the pooling every transformer adapter shares.

Adapters (``retrieval.adapters``) run a model; this module stays free of model runtimes so that
services and tests can depend on the port alone.
"""

from __future__ import annotations

import asyncio
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
