from __future__ import annotations

import dataclasses
import uuid

import pytest

from auth.context import scim_context, system_context, user_context, with_epoch
from kernel.tenancy import Role, SystemAuthority, TenantContext, TenantRoute

ROUTE = TenantRoute(uuid.uuid4(), "acme", "eu", "active")


def test_tenant_context_cannot_be_forged_outside_auth() -> None:
    with pytest.raises(TypeError, match="only be built by the auth package"):
        TenantContext(
            tenant_id=uuid.uuid4(),
            tenant_slug="x",
            region="eu",
            user_id=None,
            roles=frozenset({Role.TENANT_ADMIN}),
            group_ids=frozenset(),
            auth_method="api_key",
        )


def test_a_context_cannot_be_copied_with_changes_outside_auth() -> None:
    member = user_context(
        ROUTE,
        user_id=uuid.uuid4(),
        roles=["member"],
        group_ids=[],
        auth_method="api_key",
        credential_id=None,
    )
    for change in (
        {"tenant_id": uuid.uuid4()},
        {"region": "us"},
        {"roles": frozenset({Role.TENANT_ADMIN})},
        {"clearance": 3},
    ):
        with pytest.raises(TypeError, match="only be built by the auth package"):
            dataclasses.replace(member, **change)
    # The one change auth makes, through its own function.
    assert with_epoch(member, 7).epoch == 7
    assert with_epoch(member, 7) == member


def test_system_context_has_no_user_and_no_roles() -> None:
    ctx = system_context(ROUTE)
    assert (ctx.tenant_id, ctx.region, ctx.user_id, ctx.roles) == (
        ROUTE.id,
        "eu",
        None,
        frozenset(),
    )
    assert ctx.is_system


def test_user_context_drops_unknown_roles_and_is_immutable() -> None:
    ctx = user_context(
        ROUTE,
        user_id=uuid.uuid4(),
        roles=["member", "superuser"],
        group_ids=[],
        auth_method="api_key",
        credential_id=None,
    )
    assert ctx.roles == frozenset({Role.MEMBER})
    assert not ctx.has_role(Role.TENANT_ADMIN)
    with pytest.raises(AttributeError):
        ctx.region = "us"  # type: ignore[misc]


def test_scim_context_has_no_user_and_no_roles() -> None:
    credential = uuid.uuid4()
    ctx = scim_context(ROUTE, credential_id=credential)
    assert (ctx.tenant_id, ctx.user_id, ctx.roles, ctx.group_ids) == (
        ROUTE.id,
        None,
        frozenset(),
        frozenset(),
    )
    assert (ctx.auth_method, ctx.credential_id) == ("scim", credential)
    assert not ctx.is_system


def test_the_system_authority_is_granted_not_built() -> None:
    with pytest.raises(TypeError, match="composition root"):
        SystemAuthority(object())
    ctx = SystemAuthority.grant().context(ROUTE)
    assert (ctx.tenant_id, ctx.is_system, ctx.user_id, ctx.roles) == (
        ROUTE.id,
        True,
        None,
        frozenset(),
    )
