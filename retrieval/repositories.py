"""Tenant-scoped documents and jobs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.context import TenantContext
from retrieval.models import Document, Job


class _Scoped:
    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        if not isinstance(ctx, TenantContext):
            raise TypeError("a TenantContext is required")
        self.session = session
        self.ctx = ctx


class DocumentRepository(_Scoped):
    async def get(self, document_id: uuid.UUID) -> Document | None:
        result = await self.session.execute(
            select(Document).where(
                Document.tenant_id == self.ctx.tenant_id, Document.id == document_id
            )
        )
        return result.scalar_one_or_none()

    async def get_many(self, document_ids: Sequence[uuid.UUID]) -> Sequence[Document]:
        if not document_ids:
            return []
        result = await self.session.execute(
            select(Document).where(
                Document.tenant_id == self.ctx.tenant_id, Document.id.in_(list(document_ids))
            )
        )
        return result.scalars().all()

    async def by_external_id(self, external_id: str) -> Document | None:
        result = await self.session.execute(
            select(Document).where(
                Document.tenant_id == self.ctx.tenant_id, Document.external_id == external_id
            )
        )
        return result.scalar_one_or_none()

    async def by_content_hash(self, content_hash: str) -> Document | None:
        result = await self.session.execute(
            select(Document)
            .where(
                Document.tenant_id == self.ctx.tenant_id,
                Document.content_hash == content_hash,
                Document.external_id.is_(None),
            )
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def batch(
        self, *, after: tuple[object, uuid.UUID] | None, size: int
    ) -> Sequence[Document]:
        query = select(Document).where(Document.tenant_id == self.ctx.tenant_id)
        if after is not None:
            created, last_id = after
            query = query.where(
                (Document.created_at > created)
                | ((Document.created_at == created) & (Document.id > last_id))
            )
        result = await self.session.execute(
            query.order_by(Document.created_at, Document.id).limit(size)
        )
        return result.scalars().all()

    async def add(self, document: Document) -> Document:
        document.tenant_id = self.ctx.tenant_id
        self.session.add(document)
        await self.session.flush()
        return document

    async def remove(self, document: Document) -> None:
        await self.session.execute(
            delete(Document).where(
                Document.tenant_id == self.ctx.tenant_id, Document.id == document.id
            )
        )


class JobRepository(_Scoped):
    async def get(self, job_id: uuid.UUID) -> Job | None:
        result = await self.session.execute(
            select(Job).where(Job.tenant_id == self.ctx.tenant_id, Job.id == job_id)
        )
        return result.scalar_one_or_none()

    async def add(self, job: Job) -> Job:
        job.tenant_id = self.ctx.tenant_id
        self.session.add(job)
        await self.session.flush()
        return job
