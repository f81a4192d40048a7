"""Tenant-admin KMS settings: bring your own key, rotate data keys.

These routes run without the key gate the other tenant routes have: an admin must be able to
see and replace a key that has stopped working.
"""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from kernel.api import SECURED, problem_responses
from kernel.audit_events import AuditRecorder
from kernel.guards import requires_role
from kernel.tenancy import Role, TenantContext
from keys.kms import KeyRef
from keys.schemas import KmsConfigRead, KmsConfigUpdate, KmsRotated
from keys.services import KmsStatus, TenantKeys


def kms_read(status: KmsStatus, ctx: TenantContext) -> KmsConfigRead:
    config = status.config
    return KmsConfigRead(
        provider=config.provider,
        key_id=config.key_id,
        region=config.aws_region or ctx.region,
        role_arn=config.role_arn,
        managed=config.managed,
        current_version=status.current_version,
        versions=status.versions,
        updated_at=config.updated_at,
    )


class KmsController(Controller):
    path = "/v1/admin/kms"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]
    # ``tenant_keys`` and ``key_admin_audit`` work in the key-admin unit of work
    # (``key_admin_db``), which has no key gate.

    @get("/", responses=problem_responses(), summary="The tenant's KMS key and data-key versions")
    async def get_kms(
        self, tenant_keys: NamedDependency[TenantKeys], ctx: NamedDependency[TenantContext]
    ) -> KmsConfigRead:
        return kms_read(await tenant_keys.status(), ctx)

    @put(
        "/",
        responses=problem_responses(422),
        summary="Use another KMS key (validated by a wrap/unwrap round trip first)",
    )
    async def put_kms(
        self,
        tenant_keys: NamedDependency[TenantKeys],
        ctx: NamedDependency[TenantContext],
        key_admin_audit: NamedDependency[AuditRecorder],
        data: JSONBody[KmsConfigUpdate],
    ) -> KmsConfigRead:
        ref = KeyRef(
            provider=data.provider,
            key_id=data.key_id,
            aws_region=data.region,
            role_arn=data.role_arn,
            external_id=data.external_id,
            tenant=str(ctx.tenant_id),
        )
        status, _ = await tenant_keys.configure(ref, key_admin_audit)
        return kms_read(status, ctx)

    @post(
        "/rotate",
        status_code=200,
        responses=problem_responses(),
        summary="New data-key version; re-wrap older versions under the current KMS key",
    )
    async def rotate_kms(
        self,
        tenant_keys: NamedDependency[TenantKeys],
        ctx: NamedDependency[TenantContext],
        key_admin_audit: NamedDependency[AuditRecorder],
    ) -> KmsRotated:
        status, rewrapped = await tenant_keys.rotate(key_admin_audit)
        return KmsRotated(config=kms_read(status, ctx), rewrapped=rewrapped)
