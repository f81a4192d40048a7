"""The semantic cache's question vectors: the port and the choice of adapter.

One more collection (Qdrant server) or shard (Qdrant Edge) per region beside the chunks, with
``tenant_id`` as a tenant-keyed payload index: every lookup carries the tenant filter, so tenant
B's question can never land on tenant A's entry, whatever their cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext


@runtime_checkable
class QuestionIndex(Protocol):
    region: str

    async def put(self, ctx: TenantContext, entry_id: str, vector: Sequence[float]) -> None:
        """Index one cache entry's question embedding for ``ctx``'s tenant."""

    async def nearest(
        self, ctx: TenantContext, vector: Sequence[float], *, limit: int, min_score: float
    ) -> list[tuple[str, float]]:
        """Entry ids of ``ctx``'s tenant whose cosine to ``vector`` is at least ``min_score``."""
        ...

    async def delete(self, ctx: TenantContext, entry_ids: Sequence[str]) -> None: ...

    async def close(self) -> None: ...


def open_question_index(region: str, location: str, *, dense_size: int) -> QuestionIndex:
    """The region's question index, next to its chunks (``vector_store`` setting)."""
    if location.startswith(("http://", "https://")):
        from retrieval.vectorstore.adapters.server import ServerQuestionIndex

        return ServerQuestionIndex.connect(region, location, dense_size=dense_size)
    from retrieval.vectorstore.adapters.edge import EdgeQuestionIndex

    return EdgeQuestionIndex(region, location, dense_size=dense_size)
