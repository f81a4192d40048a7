"""Tenant purge: crypto-shredding a deleted tenant once its grace period has passed.

A compliance duty that reaches into several stores (keys, identity, the regional database), so it
lives here rather than in ``tenants``, which only keeps the control-plane record.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from audit.pseudonyms import SYSTEM_SUBJECT
from audit.services import AuditOrigin
from auth.repositories import purge_identity
from kernel.audit_events import AuditAction, ResourceType
from kernel.db import utcnow
from kernel.tenancy import SystemAuthority, TenantRoute
from keys.services import Keyring
from residency.database import Database
from residency.registry import RegionRegistry
from tenants.repositories import TenantRepository


async def purge_due_tenants(
    control: Database,
    registry: RegionRegistry,
    keyring: Keyring,
    system: SystemAuthority,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Crypto-shred every deleted tenant whose grace period has passed (``bulwark tenants purge``).

    Per tenant: destroy its data keys and platform-managed KMS key, delete its identity rows, then
    mark it purged. Sealed data anywhere (object store, database backups) is unreadable after.
    Resumable: a tenant is marked purged only after its region has been purged.
    """
    now = now or utcnow()
    async with control.transaction(None) as session:
        due = [TenantRoute.of(t) for t in await TenantRepository(session).due_for_purge(now)]
    purged = []
    for route in due:
        ctx = system.context(route)
        async with registry.tenant_transaction(ctx) as session:
            await keyring.for_tenant(session, ctx).shred()
            await purge_identity(session, ctx)
            await (
                AuditOrigin(SYSTEM_SUBJECT)
                .log(session, ctx)
                .record(
                    AuditAction.TENANT_PURGED,
                    resource_type=ResourceType.TENANT,
                    resource_id=route.id,
                )
            )
        await registry.region(route.region).database.scrub()
        async with control.transaction(None) as session:
            tenant = await TenantRepository(session).get(route.id)
            if tenant is not None:
                tenant.purged_at = utcnow()
        purged.append(route.id)
    return purged
