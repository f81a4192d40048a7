"""The builders of ``TenantContext`` (``kernel.tenancy``): the one package that may make one.

Authentication builds a user's or a SCIM client's context from what it resolved server-side,
stamps the epoch it read, and mints system contexts for its own lookups before anyone is
authenticated; everything else gets its contexts from here or from a ``SystemAuthority``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping

from kernel.tenancy import (
    AuthMethod,
    Role,
    TenantContext,
    TenantRoute,
    _build,
    _permitted,
)


def with_epoch(ctx: TenantContext, epoch: int) -> TenantContext:
    """``ctx`` as of the tenant epoch that authentication read (the one change auth makes to a
    context once built)."""
    return _permitted(lambda: dataclasses.replace(ctx, epoch=epoch))


def system_context(tenant: TenantRoute) -> TenantContext:
    """A context for trusted internal work on one tenant, for this package's own use (sign-in
    and credential lookups before anyone is authenticated). Elsewhere, system contexts come only
    from a ``SystemAuthority`` (the architecture test holds both rules).

    It carries no user and no roles, so no role-guarded API accepts it; repositories still scope
    everything it touches to this one tenant.
    """
    return _build(tenant, user_id=None, roles=(), group_ids=(), auth_method="system")


def user_context(
    tenant: TenantRoute,
    *,
    user_id: uuid.UUID,
    roles: Iterable[str],
    group_ids: Iterable[uuid.UUID],
    auth_method: AuthMethod,
    credential_id: uuid.UUID | None,
    clearance: int = 0,
    attributes: Mapping[str, Iterable[str]] | None = None,
) -> TenantContext:
    """A user's context. Clearance and attributes (for document ABAC) come from the user record
    the tenant admin maintains; absent, they are the least: public, no attributes."""
    known = {role.value for role in Role}
    return _build(
        tenant,
        user_id=user_id,
        roles=(Role(role) for role in roles if role in known),
        group_ids=group_ids,
        auth_method=auth_method,
        credential_id=credential_id,
        clearance=clearance,
        attributes=attributes,
    )


def scim_context(tenant: TenantRoute, *, credential_id: uuid.UUID) -> TenantContext:
    """The context of a tenant's SCIM client (its IdP), authenticated by a SCIM token.

    It carries no user and no roles: no role-guarded API accepts it, and the SCIM routes (the
    only ones that take it) act on the tenant's users and groups through repositories scoped to
    this one tenant.
    """
    return _build(
        tenant,
        user_id=None,
        roles=(),
        group_ids=(),
        auth_method="scim",
        credential_id=credential_id,
    )
