"""Tenant-scoped access to the DLP policy row."""

from __future__ import annotations

from sqlalchemy import select

from dlp.models import DlpPolicyRow
from kernel.repositories import TenantScope


class DlpPolicyRepository(TenantScope):
    """This tenant's DLP policy row."""

    async def get(self) -> DlpPolicyRow | None:
        result = await self.session.execute(
            select(DlpPolicyRow).where(DlpPolicyRow.tenant_id == self.ctx.tenant_id)
        )
        return result.scalar_one_or_none()

    async def add(self, row: DlpPolicyRow) -> DlpPolicyRow:
        row.tenant_id = self.ctx.tenant_id
        self.session.add(row)
        await self.session.flush()
        return row

    async def flush(self) -> None:
        await self.session.flush()
