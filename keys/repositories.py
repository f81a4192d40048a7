"""Tenant-scoped access to the KMS configuration and wrapped data keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select

from kernel.repositories import TenantScope
from keys.models import TenantKms, WrappedDataKey


class KeyRepository(TenantScope):
    """This tenant's KMS configuration and wrapped data keys."""

    async def config(self) -> TenantKms | None:
        result = await self.session.execute(
            select(TenantKms).where(TenantKms.tenant_id == self.ctx.tenant_id)
        )
        return result.scalar_one_or_none()

    async def add(self, row: TenantKms | WrappedDataKey) -> None:
        row.tenant_id = self.ctx.tenant_id
        self.session.add(row)
        await self.session.flush()

    async def current(self) -> WrappedDataKey | None:
        result = await self.session.execute(
            select(WrappedDataKey)
            .where(WrappedDataKey.tenant_id == self.ctx.tenant_id)
            .order_by(WrappedDataKey.version.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def version(self, version: int) -> WrappedDataKey | None:
        result = await self.session.execute(
            select(WrappedDataKey).where(
                WrappedDataKey.tenant_id == self.ctx.tenant_id, WrappedDataKey.version == version
            )
        )
        return result.scalar_one_or_none()

    async def all_versions(self) -> Sequence[WrappedDataKey]:
        result = await self.session.execute(
            select(WrappedDataKey)
            .where(WrappedDataKey.tenant_id == self.ctx.tenant_id)
            .order_by(WrappedDataKey.version)
        )
        return result.scalars().all()

    async def count(self) -> int:
        result = await self.session.execute(
            select(func.count()).where(WrappedDataKey.tenant_id == self.ctx.tenant_id)
        )
        return int(result.scalar_one())

    async def destroy_all(self) -> None:
        await self.session.execute(
            delete(WrappedDataKey).where(WrappedDataKey.tenant_id == self.ctx.tenant_id)
        )
        await self.session.execute(
            delete(TenantKms).where(TenantKms.tenant_id == self.ctx.tenant_id)
        )
