"""Who is asking: ``TenantContext`` for tenant principals, ``OperatorPrincipal`` for the operator.

``TenantContext`` is the capability every tenant-owned repository, store and cache requires. Only
the auth package may construct one (docs/ARCHITECTURE.md, "Tenancy"): the constructor only runs
inside a builder (a context variable grants the permission for the duration of one build); the
builders live in ``auth.context`` and in ``SystemAuthority`` below, so code elsewhere can neither
forge a context for a tenant it did not authenticate nor copy one with changes
(``dataclasses.replace`` runs the same check; the architecture test forbids the calls, and any
import of this module's private builders, outside ``auth/``).
Contexts for the system's own work come from a ``SystemAuthority``, a capability the composition
root grants once and hands on.
Everything in it is resolved server-side at authentication time; nothing comes from the request
body.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

# True only while one of this module's builders constructs a context.
_BUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar("bulwark_ctx_build", default=False)

AuthMethod = Literal["api_key", "session", "oidc", "scim", "system"]


class Role(StrEnum):
    TENANT_ADMIN = "tenant_admin"
    COMPLIANCE_OFFICER = "compliance_officer"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class TenantContext:
    tenant_id: uuid.UUID
    tenant_slug: str
    region: str
    user_id: uuid.UUID | None
    roles: frozenset[Role]
    group_ids: frozenset[uuid.UUID]
    auth_method: AuthMethod
    credential_id: uuid.UUID | None = None
    clearance: int = 0
    attributes: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    # The tenant's epoch read for this request (``kernel.epochs``), when authentication read it.
    epoch: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _BUILDING.get():
            raise TypeError("TenantContext can only be built by the auth package")

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_system(self) -> bool:
        return self.auth_method == "system"


@dataclass(frozen=True, slots=True)
class OperatorPrincipal:
    """The platform operator: manages tenants on the control plane, never reads tenant data."""

    name: str = "operator"


Principal = TenantContext | OperatorPrincipal


class TenantRoute:
    """The control-plane facts a context is built from (id, slug, region, status)."""

    __slots__ = ("deleted", "id", "region", "slug", "status")

    def __init__(
        self, id: uuid.UUID, slug: str, region: str, status: str, deleted: bool = False
    ) -> None:
        self.id, self.slug, self.region, self.status = id, slug, region, status
        self.deleted = deleted

    @classmethod
    def of(cls, tenant: Any) -> TenantRoute:
        """From a control-plane tenant row."""
        return cls(
            tenant.id,
            tenant.slug,
            tenant.region,
            tenant.status,
            deleted=tenant.deleted_at is not None,
        )


def _permitted(make: Callable[[], TenantContext]) -> TenantContext:
    token = _BUILDING.set(True)
    try:
        return make()
    finally:
        _BUILDING.reset(token)


def _build(
    tenant: TenantRoute,
    *,
    user_id: uuid.UUID | None,
    roles: Iterable[Role],
    group_ids: Iterable[uuid.UUID],
    auth_method: AuthMethod,
    credential_id: uuid.UUID | None = None,
    clearance: int = 0,
    attributes: Mapping[str, Iterable[str]] | None = None,
) -> TenantContext:
    return _permitted(
        lambda: TenantContext(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            region=tenant.region,
            user_id=user_id,
            roles=frozenset(roles),
            group_ids=frozenset(group_ids),
            auth_method=auth_method,
            credential_id=credential_id,
            clearance=clearance,
            attributes=MappingProxyType(
                {key: frozenset(values) for key, values in (attributes or {}).items()}
            ),
        )
    )


class SystemAuthority:
    """The capability to act on a tenant as the system: background jobs, the retention sweep and
    tenant purge, the CLI, tenant provisioning, the console's sign-in page.

    The composition root (``app.runtime.Runtime.build``) grants the one instance of a process and
    hands it to those that need it; no other module may grant one (the architecture test), so
    code that was not handed the authority cannot mint a context for an arbitrary tenant.
    """

    __slots__ = ()

    def __init__(self, _key: object) -> None:
        if _key is not _GRANT_KEY:
            raise TypeError("a SystemAuthority is granted by the composition root only")

    @classmethod
    def grant(cls) -> SystemAuthority:
        return cls(_GRANT_KEY)

    def context(self, tenant: TenantRoute) -> TenantContext:
        return _build(tenant, user_id=None, roles=(), group_ids=(), auth_method="system")


_GRANT_KEY = object()
