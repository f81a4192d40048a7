"""Dropping cached answers when what they cite changes (new version, ACL change, deletion)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.tenancy import TenantContext
from retrieval.cache.index import QuestionIndex
from retrieval.repositories import CacheRepository


async def drop_entries(
    session: AsyncSession, ctx: TenantContext, questions: QuestionIndex, ids: Sequence[uuid.UUID]
) -> int:
    if ids:
        await CacheRepository(session, ctx).remove(ids)
        await questions.delete(ctx, [str(i) for i in ids])
    return len(ids)


async def drop_answers_citing(
    session: AsyncSession,
    ctx: TenantContext,
    questions: QuestionIndex,
    document_ids: Sequence[uuid.UUID],
) -> int:
    """Drop every cached answer that cites one of these documents (in this tenant)."""
    entries = await CacheRepository(session, ctx).citing(document_ids)
    return await drop_entries(session, ctx, questions, entries)
