"""Tenant-scoped documents, jobs and semantic-cache entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select

from kernel.repositories import TenantScoped
from retrieval.models import CacheEntry, CacheSource, Document


class DocumentRepository(TenantScoped[Document]):
    """This tenant's documents (``get`` and ``add`` are the base's)."""

    model = Document

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

    async def by_content_hash(self, content_hash: str) -> Sequence[Document]:
        """Documents (without an external id) holding exactly this content, oldest first."""
        result = await self.session.execute(
            select(Document)
            .where(
                Document.tenant_id == self.ctx.tenant_id,
                Document.content_hash == content_hash,
                Document.external_id.is_(None),
            )
            .order_by(Document.created_at, Document.id)
            .limit(50)
        )
        return result.scalars().all()

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

    def _stale(self, index_version: int) -> ColumnElement[bool]:
        return (
            (Document.tenant_id == self.ctx.tenant_id)
            & (Document.status == "ready")
            & (Document.index_version < index_version)
        )

    async def stale(self, index_version: int, *, size: int) -> Sequence[Document]:
        """Indexed documents whose vectors were built from an older index text, oldest first."""
        result = await self.session.execute(
            select(Document)
            .where(self._stale(index_version))
            .order_by(Document.created_at, Document.id)
            .limit(size)
        )
        return result.scalars().all()

    async def count_stale(self, index_version: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Document).where(self._stale(index_version))
        )
        return int(result.scalar_one())

    async def remove(self, document: Document) -> None:
        await self.session.execute(
            delete(Document).where(
                Document.tenant_id == self.ctx.tenant_id, Document.id == document.id
            )
        )


class CacheRepository(TenantScoped[CacheEntry]):
    """This tenant's cache entries and the sources they cite."""

    model = CacheEntry

    async def live(self, entry_ids: Sequence[uuid.UUID], now: datetime) -> Sequence[CacheEntry]:
        if not entry_ids:
            return []
        return await self.find(
            (CacheEntry.id.in_(list(entry_ids))) & (CacheEntry.expires_at > now),
            order_by=[CacheEntry.created_at.desc()],
        )

    async def by_exact_key(self, exact_key: str, now: datetime) -> CacheEntry | None:
        rows = await self.find(
            (CacheEntry.exact_key == exact_key) & (CacheEntry.expires_at > now),
            order_by=[CacheEntry.created_at.desc()],
            limit=1,
        )
        return rows[0] if rows else None

    async def sources(self, entry_id: uuid.UUID) -> Sequence[CacheSource]:
        result = await self.session.execute(
            select(CacheSource).where(
                CacheSource.tenant_id == self.ctx.tenant_id, CacheSource.entry_id == entry_id
            )
        )
        return result.scalars().all()

    async def add_sources(self, entry_id: uuid.UUID, versions: dict[uuid.UUID, int]) -> None:
        for document_id, version in versions.items():
            self.session.add(
                CacheSource(
                    tenant_id=self.ctx.tenant_id,
                    entry_id=entry_id,
                    document_id=document_id,
                    version=version,
                )
            )
        await self.session.flush()

    async def citing(self, document_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(CacheSource.entry_id).where(
                CacheSource.tenant_id == self.ctx.tenant_id,
                CacheSource.document_id.in_(list(document_ids)),
            )
        )
        return list(dict.fromkeys(result.scalars().all()))

    async def ids_where(self, where: ColumnElement[bool]) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(CacheEntry.id).where(CacheEntry.tenant_id == self.ctx.tenant_id, where)
        )
        return list(result.scalars().all())

    async def remove(self, entry_ids: Sequence[uuid.UUID]) -> None:
        if not entry_ids:
            return
        ids = list(entry_ids)
        await self.session.execute(
            delete(CacheSource).where(
                CacheSource.tenant_id == self.ctx.tenant_id, CacheSource.entry_id.in_(ids)
            )
        )
        await self.session.execute(
            delete(CacheEntry).where(
                CacheEntry.tenant_id == self.ctx.tenant_id, CacheEntry.id.in_(ids)
            )
        )
