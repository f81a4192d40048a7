"""What IdPs send, normalised before validation (auth/scim/compat.py)."""

from __future__ import annotations

from auth.scim import compat
from auth.scim.resources import ENTERPRISE_SCHEMA, PATCH_SCHEMA

BASE = "https://bulwark.example/scim/v2/acme"


def test_entra_manager_as_a_bare_id_gets_value_and_ref() -> None:
    payload = {"userName": "u", ENTERPRISE_SCHEMA: {"manager": "m-1", "department": "R"}}
    normalised = compat.user_payload(payload, BASE)
    assert normalised[ENTERPRISE_SCHEMA] == {
        "manager": {"value": "m-1", "$ref": f"{BASE}/Users/m-1"},
        "department": "R",
    }
    assert payload[ENTERPRISE_SCHEMA]["manager"] == "m-1"  # the input is left as it was
    patch = compat.patch_payload(
        {"Operations": [{"op": "Add", "path": f"{ENTERPRISE_SCHEMA}:manager", "value": "m-2"}]},
        resource="User",
        base_url=BASE,
    )
    assert patch["Operations"][0]["value"] == {"value": "m-2", "$ref": f"{BASE}/Users/m-2"}
    kept = compat.user_payload(
        {ENTERPRISE_SCHEMA: {"manager": {"value": "m", "$ref": "x", "displayName": "Boss"}}}, BASE
    )
    assert kept[ENTERPRISE_SCHEMA]["manager"] == {"value": "m", "$ref": "x"}


def test_member_display_names_are_dropped() -> None:
    group = compat.group_payload({"displayName": "g", "members": [{"value": "1", "display": "x"}]})
    assert group["members"] == [{"value": "1"}]
    patch = compat.patch_payload(
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "2", "Display": "y"}]},
                {"op": "replace", "value": {"members": [{"value": "3", "display": "z"}]}},
                {"op": "remove", "path": 'members[value eq "4"]'},
            ],
        },
        resource="Group",
        base_url=BASE,
    )
    assert [op.get("value") for op in patch["Operations"]] == [
        [{"value": "2"}],
        {"members": [{"value": "3"}]},
        None,
    ]


def test_patch_envelope_is_made_regular() -> None:
    patch = compat.patch_payload(
        {"operations": [{"Op": "Replace", "Value": {"id": "u-1", "meta": {}, "active": "False"}}]},
        resource="User",
        base_url=BASE,
    )
    assert patch == {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "Replace", "value": {"active": "False"}}],
    }
    assert compat.patch_payload([1], resource="User", base_url=BASE) == [1]
