"""The compiled ACL filter selects exactly what the reference policy allows (no I/O).

The filter tree is evaluated here by a test oracle with Qdrant's semantics; the integration tests
run the same comparison through both real engines.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.tenancy import TenantRoute
from retrieval.acl import (
    NEVER,
    DocumentAcl,
    SearchFilters,
    acl_filter,
    chunk_payload,
    may_read,
    search_filter,
)
from retrieval.errors import InvalidAcl
from tests.retrieval_world import ATTRIBUTE_KEYS, ATTRIBUTE_VALUES, evaluate, principal

TENANTS = [TenantRoute(uuid.UUID(int=i + 1), f"t{i}", "eu", "active") for i in range(2)]
USERS = [uuid.UUID(int=100 + i) for i in range(4)]
GROUPS = [uuid.UUID(int=200 + i) for i in range(4)]

attribute_maps = st.dictionaries(
    st.sampled_from(ATTRIBUTE_KEYS), st.lists(st.sampled_from(ATTRIBUTE_VALUES), max_size=3)
)


@st.composite
def principals(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    held = draw(attribute_maps)
    return principal(
        draw(st.sampled_from(TENANTS)),
        user_id=draw(st.sampled_from([*USERS, None])),
        groups=frozenset(draw(st.lists(st.sampled_from(GROUPS), max_size=3))),
        clearance=draw(st.integers(0, 3)),
        attributes={k: frozenset(v) for k, v in held.items()},
    )


@st.composite
def documents(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    acl = DocumentAcl(
        visibility=draw(st.sampled_from(["restricted", "tenant"])),
        groups=tuple(map(str, draw(st.lists(st.sampled_from(GROUPS), max_size=2)))),
        users=tuple(map(str, draw(st.lists(st.sampled_from(USERS), max_size=2)))),
        classification=draw(st.integers(0, 3)),
        attributes=draw(attribute_maps),
        owner=draw(st.sampled_from([*map(str, USERS), None])),
    )
    return draw(st.sampled_from(TENANTS)).id, acl


@settings(max_examples=1500, deadline=None)
@given(principals(), documents())
def test_compiled_filter_equals_reference_policy(ctx, document) -> None:  # type: ignore[no-untyped-def]
    tenant_id, acl = document
    payload = chunk_payload(tenant_id, "doc", "chunk", 0, acl)
    assert evaluate(acl_filter(ctx), payload) == may_read(ctx, acl, tenant_id)


@settings(max_examples=500, deadline=None)
@given(principals(), documents(), st.sampled_from(["en", "fr"]), st.sampled_from(["en", "fr"]))
def test_caller_filters_only_narrow(ctx, document, stored, wanted) -> None:  # type: ignore[no-untyped-def]
    tenant_id, acl = document
    payload = chunk_payload(tenant_id, "doc", "chunk", 0, acl, {"lang": stored})
    narrowed = evaluate(search_filter(ctx, SearchFilters(metadata={"lang": wanted})), payload)
    assert narrowed == (may_read(ctx, acl, tenant_id) and stored == wanted)
    # A caller cannot widen: even filters naming the document keep the ACL.
    by_id = evaluate(search_filter(ctx, SearchFilters(document_ids=["doc"])), payload)
    assert by_id == may_read(ctx, acl, tenant_id)


def test_missing_or_empty_acl_admits_only_the_uploader() -> None:
    owner, other = USERS[0], USERS[1]
    tenant = TENANTS[0]
    for acl in (DocumentAcl.owner_only(owner), DocumentAcl(owner=str(owner))):
        assert may_read(principal(tenant, user_id=owner), acl, tenant.id)
        assert not may_read(principal(tenant, user_id=other, clearance=3), acl, tenant.id)
    nobody = DocumentAcl()
    assert not may_read(principal(tenant, user_id=owner, clearance=3), nobody, tenant.id)
    assert not may_read(principal(tenant, user_id=None), nobody, tenant.id)


def test_tenant_wide_document_is_not_visible_to_another_tenant() -> None:
    acl = DocumentAcl(visibility="tenant")
    payload = chunk_payload(TENANTS[0].id, "doc", "chunk", 0, acl)
    stranger = principal(TENANTS[1], user_id=USERS[0], clearance=3)
    assert not may_read(stranger, acl, TENANTS[0].id)
    assert not evaluate(acl_filter(stranger), payload)


def test_attribute_pairs_of_one_key_never_satisfy_another() -> None:
    # "dept" holding "project=eng" encodes as "dept=project=eng"; the document wants project=eng.
    tenant = TENANTS[0]
    acl = DocumentAcl(visibility="tenant", attributes={"project": ["eng"]})
    ctx = principal(
        tenant,
        user_id=USERS[0],
        attributes={"dept": frozenset({"project=eng"}), "project": frozenset({"x"})},
    )
    assert not may_read(ctx, acl, tenant.id)
    assert not evaluate(acl_filter(ctx), chunk_payload(tenant.id, "d", "c", 0, acl))


def test_a_key_listed_without_values_is_never_satisfied() -> None:
    tenant = TENANTS[0]
    acl = DocumentAcl(visibility="tenant", attributes={"dept": []})
    ctx = principal(tenant, user_id=USERS[0], attributes={"dept": frozenset({"eng"})})
    assert not may_read(ctx, acl, tenant.id)
    assert not evaluate(acl_filter(ctx), chunk_payload(tenant.id, "d", "c", 0, acl))


def test_empty_allow_lists_compile_to_never() -> None:
    ctx = principal(TENANTS[0], user_id=USERS[0])
    assert search_filter(ctx, SearchFilters(document_ids=[])) is NEVER


@pytest.mark.parametrize(
    "kwargs",
    [
        {"visibility": "public"},
        {"classification": 4},
        {"classification": -1},
        {"groups": ("not-a-uuid",)},
        {"attributes": {"a=b": ["x"]}},
        {"attributes": {"dept": "eng"}},
    ],
)
def test_invalid_acls_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidAcl):
        DocumentAcl(**kwargs)  # type: ignore[arg-type]
