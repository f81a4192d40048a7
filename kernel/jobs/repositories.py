"""A tenant's jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from kernel.jobs.models import Job
from kernel.repositories import TenantScoped


class JobRepository(TenantScoped[Job]):
    model = Job

    async def open_of_kind(self, kind: str) -> Job | None:
        """The tenant's queued or running job of this kind, if there is one."""
        result = await self.session.execute(
            select(Job)
            .where(
                Job.tenant_id == self.ctx.tenant_id,
                Job.kind == kind,
                Job.status.in_(("queued", "running")),
            )
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def unfinished(self) -> list[uuid.UUID]:
        """Jobs queued or running: after a restart of the in-process broker, nobody runs them."""
        result = await self.session.execute(
            select(Job.id).where(
                Job.tenant_id == self.ctx.tenant_id, Job.status.in_(("queued", "running"))
            )
        )
        return list(result.scalars().all())
