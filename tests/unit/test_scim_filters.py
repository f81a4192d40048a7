"""SCIM filters compiled to SQL: which ones the database answers exactly, and how."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from scim2_models import ScimFilter
from sqlalchemy.dialects import sqlite

from auth.context import system_context
from auth.scim.errors import ScimProtocolError
from auth.scim.filters import compile_filter
from auth.scim.repositories import ScimGroupRepository, ScimUserRepository
from auth.scim.resources import ScimGroup, ScimUser, parse_search
from kernel.tenancy import TenantRoute

CTX = system_context(TenantRoute(uuid.uuid4(), "acme", "eu", "active"))
USERS = ScimUserRepository(object(), CTX)  # type: ignore[arg-type]  # no query is run
GROUPS = ScimGroupRepository(object(), CTX)  # type: ignore[arg-type]
ID = str(uuid.uuid4())


def sql(condition: Any) -> str:
    return str(condition.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def compiled_user_filter(text: str) -> tuple[str, bool]:
    result = compile_filter(ScimFilter[ScimUser](text), USERS.attributes)
    return sql(result.condition), result.exact


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('userName eq "Bob"', "lower(users.user_name) = 'bob'"),
        ('userName co "50%_"', "LIKE '%' || '50/%/_' || '%' ESCAPE '/'"),
        ('externalId eq "E-1"', "users.external_id IS NOT NULL AND users.external_id = 'E-1'"),
        ('externalId ne "E-1"', "users.external_id IS NULL OR users.external_id != 'E-1'"),
        ("externalId pr", "users.external_id IS NOT NULL AND users.external_id != ''"),
        ("active eq false", "users.active = 0"),
        ('meta.lastModified ge "2026-01-01T00:00:00Z"', "users.updated_at >= '2026-01-01"),
        (f'id eq "{ID}"', "users.id = '" + ID.replace("-", "")),
        (f'groups.value eq "{ID}"', "EXISTS (SELECT *"),
        ('not (userName sw "a") and name.familyName eq "Z"', "user_name) NOT LIKE 'a' || '%'"),
        ('id eq "not-an-id"', "0"),  # no id is spelled that way: false
    ],
)
def test_filters_on_columns_are_exact_sql(text: str, fragment: str) -> None:
    condition, exact = compiled_user_filter(text)
    assert exact, text
    assert fragment in condition, condition


def test_membership_subqueries_are_tenant_scoped() -> None:
    condition, exact = compiled_user_filter(f'groups.value eq "{ID}" or groups pr')
    assert exact
    assert condition.count(f"memberships.tenant_id = '{CTX.tenant_id.hex}'") == 2, condition


@pytest.mark.parametrize(
    ("text", "narrowing"),
    [
        ('emails.value eq "a@b.example"', None),  # any email, not the primary one: Python
        ('emails[type eq "work"].value eq "a@b.example"', None),
        ("not (emails pr)", None),
        ('externalId co "x"', None),  # LIKE ignores ASCII case on SQLite
        ('userName eq "Zoë"', None),  # lower() differs from Python beyond ASCII
        ('userName gt "m"', None),  # collations differ
        ('title eq "CEO"', None),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R"', None),
        ('displayName eq "Ann"', "lower(users.display_name) = 'ann'"),
        ('displayName ne "Ann"', None),
        ('userName sw "a" and emails.value co "@x"', "lower(users.user_name) LIKE 'a' || '%'"),
    ],
)
def test_other_filters_only_narrow_the_candidates(text: str, narrowing: str | None) -> None:
    condition, exact = compiled_user_filter(text)
    assert not exact, text
    if narrowing is None:
        assert condition in ("1", "true"), condition
    else:
        assert narrowing in condition, condition


def test_group_filters() -> None:
    result = compile_filter(
        ScimFilter[ScimGroup](f'displayName eq "Ops" or members.value eq "{ID}"'),
        GROUPS.attributes,
    )
    assert result.exact
    text = sql(result.condition)
    assert "lower(groups.name) = 'ops'" in text and "memberships.user_id" in text
    unknown = compile_filter(ScimFilter[ScimGroup]('userName eq "x"'), GROUPS.attributes)
    assert unknown.exact and sql(unknown.condition) == "0"  # not a Group attribute: false


@pytest.mark.parametrize(
    "text", ["userName eq 5", 'meta.lastModified gt "yesterday"', "active gt true", "a eq"]
)
def test_filters_that_do_not_fit_the_schema_are_invalid_filters(text: str) -> None:
    with pytest.raises(ScimProtocolError) as caught:
        parse_search(ScimUser, {"filter": text})
    assert caught.value.scim_type_value == "invalidFilter"
