"""Between the identity rows and their SCIM representation.

A user's columns are the truth for what Bulwark itself uses: ``userName`` (``user_name``),
``externalId``, ``active``, ``name.givenName`` / ``name.familyName``. Every other SCIM attribute
(core and EnterpriseUser) is kept as sent in ``profile``, including ``displayName`` and ``emails``,
whose columns are projections that the rest of Bulwark reads:

- ``display_name``: the SCIM ``displayName``, else ``name.formatted``, else given and family name,
  else ``userName``;
- ``email`` (unique in the tenant): the primary email, else the first one, ASCII-lowercased; a
  user without any email gets ``<id>@scim.invalid``, which no IdP can assert.

``profile`` holds the key ``displayName`` / ``emails`` (possibly null) once SCIM has written the
user; a user created by the admin API or SSO has neither, and reads with its columns instead.
``profile["active"] = null`` records that a client removed ``active`` (the user is then
deactivated, and ``active`` reads as unassigned until a client sets it again).

SCIM's own ``roles`` and ``entitlements`` attributes are profile data only: they never grant a
Bulwark role (roles come from the tenant's role mappings of groups, and from the tenant admin).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from scim2_models import Context

from auth.models import Group, User
from auth.scim.errors import ScimInvalidValue
from auth.scim.resources import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, ScimGroup, ScimUser
from auth.services import normalize_email

PLACEHOLDER_EMAIL_DOMAIN = "scim.invalid"
MAX_PROFILE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Attributes a user's columns hold (or that are not stored at all: password is write-only
# and never kept, groups come from memberships, id and meta are the server's).
_NOT_IN_PROFILE = (
    "schemas",
    "id",
    "meta",
    "groups",
    "password",
    "userName",
    "externalId",
    "active",
)


def users_url(base_url: str, user_id: uuid.UUID | str) -> str:
    return f"{base_url}/Users/{user_id}"


def groups_url(base_url: str, group_id: uuid.UUID | str) -> str:
    return f"{base_url}/Groups/{group_id}"


def etag(version: int) -> str:
    return f'W/"{version}"'


def placeholder_email(user_id: uuid.UUID) -> str:
    return f"{user_id.hex}@{PLACEHOLDER_EMAIL_DOMAIN}"


def _meta(resource_type: str, row: User | Group, location: str) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": _time(row.created_at),
        "lastModified": _time(row.updated_at),
        "location": location,
        "version": etag(row.version),
    }


def _time(moment: datetime) -> str:
    return moment.isoformat()


def user_resource(user: User, groups: Sequence[tuple[uuid.UUID, str]], base_url: str) -> ScimUser:
    """The SCIM User for a users row and its groups (id, name)."""
    profile: dict[str, Any] = dict(user.profile or {})
    payload: dict[str, Any] = {k: v for k, v in profile.items() if k != "active"}
    payload["schemas"] = [
        USER_SCHEMA,
        *([ENTERPRISE_SCHEMA] if profile.get(ENTERPRISE_SCHEMA) else []),
    ]
    payload["id"] = str(user.id)
    payload["userName"] = user.user_name
    if user.external_id is not None:
        payload["externalId"] = user.external_id
    name = {k: v for k, v in dict(profile.get("name") or {}).items() if v is not None}
    for key, value in (("givenName", user.given_name), ("familyName", user.family_name)):
        if value is not None:
            name[key] = value
    if name:
        payload["name"] = name
    else:
        payload.pop("name", None)
    derived_emails = False
    if "displayName" not in profile:
        payload["displayName"] = user.display_name
    if "emails" not in profile and not user.email.endswith("@" + PLACEHOLDER_EMAIL_DOMAIN):
        payload["emails"] = [{"value": user.email, "primary": True}]
        derived_emails = True
    for key in ("displayName", "emails"):
        if payload.get(key) is None:
            payload.pop(key, None)
    if not ("active" in profile and profile["active"] is None):
        payload["active"] = user.active
    if groups:
        payload["groups"] = [
            {
                "value": str(group_id),
                "$ref": groups_url(base_url, group_id),
                "display": group_name,
                "type": "direct",
            }
            for group_id, group_name in groups
        ]
    payload["meta"] = _meta("User", user, users_url(base_url, user.id))
    try:
        return ScimUser.model_validate(payload, scim_ctx=Context.DEFAULT)
    except ValidationError:
        if not derived_emails:
            raise
        # An address the admin API accepted but SCIM's email type does not: leave it out.
        payload.pop("emails")
        return ScimUser.model_validate(payload, scim_ctx=Context.DEFAULT)


def group_resource(
    group: Group, member_ids: Sequence[uuid.UUID] | None, base_url: str
) -> ScimGroup:
    """The SCIM Group for a groups row; ``member_ids`` None leaves ``members`` out (not loaded)."""
    payload: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "id": str(group.id),
        "displayName": group.name,
        "meta": _meta("Group", group, groups_url(base_url, group.id)),
    }
    if group.external_id is not None:
        payload["externalId"] = group.external_id
    if member_ids:
        payload["members"] = [
            {"value": str(user_id), "$ref": users_url(base_url, user_id), "type": "User"}
            for user_id in member_ids
        ]
    return ScimGroup.model_validate(payload, scim_ctx=Context.DEFAULT)


@dataclass(frozen=True, slots=True)
class UserFields:
    """What a SCIM User writes into a users row (``email`` None: the placeholder)."""

    user_name: str
    external_id: str | None
    given_name: str | None
    family_name: str | None
    display_name: str
    email: str | None
    active: bool | None
    profile: dict[str, Any]


def user_fields(resource: ScimUser) -> UserFields:
    data: dict[str, Any] = resource.model_dump(scim_ctx=Context.DEFAULT)
    for key in _NOT_IN_PROFILE:
        data.pop(key, None)
    name: dict[str, Any] = dict(data.pop("name", None) or {})
    given_name = name.pop("givenName", None)
    family_name = name.pop("familyName", None)
    profile = data
    if name:
        profile["name"] = name
    profile.setdefault("displayName", None)
    profile.setdefault("emails", None)
    user_name = _text(resource.user_name or "", "userName", 320, required=True)
    display_name = (
        resource.display_name
        or name.get("formatted")
        or " ".join(part for part in (given_name, family_name) if part)
        or user_name
    )
    if resource.display_name is not None:
        _text(resource.display_name, "displayName", 200)
    fields = UserFields(
        user_name=user_name,
        external_id=_optional_text(resource.external_id, "externalId", 256),
        given_name=_optional_text(given_name, "name.givenName", 200),
        family_name=_optional_text(family_name, "name.familyName", 200),
        display_name=_control_free(display_name)[:200].strip() or user_name[:200],
        email=_primary_email(resource),
        active=resource.active,
        profile=profile,
    )
    _check_profile(profile)
    return fields


def _primary_email(resource: ScimUser) -> str | None:
    emails = [email for email in resource.emails or [] if email.value]
    chosen = next((email for email in emails if email.primary), emails[0] if emails else None)
    if chosen is None or chosen.value is None:
        return None
    return _text(normalize_email(str(chosen.value)), "emails.value", 320, required=True)


@dataclass(frozen=True, slots=True)
class GroupFields:
    name: str
    external_id: str | None
    member_ids: list[uuid.UUID]


def group_fields(resource: ScimGroup) -> GroupFields:
    return GroupFields(
        name=_text(resource.display_name or "", "displayName", 200, required=True),
        external_id=_optional_text(resource.external_id, "externalId", 256),
        member_ids=member_ids(resource),
    )


def member_ids(resource: ScimGroup) -> list[uuid.UUID]:
    """The member user ids, in order, without duplicates (members must be users)."""
    ids: dict[uuid.UUID, None] = {}
    for member in resource.members or []:
        if member.type is not None and member.type.lower() != "user":
            raise ScimInvalidValue("Group members must be users; groups do not nest.")
        value = member.value
        if value is None and member.ref is not None:
            value = str(member.ref).rstrip("/").rsplit("/", 1)[-1]
        try:
            ids[uuid.UUID(str(value))] = None
        except ValueError:
            raise ScimInvalidValue(
                "A group member is not the id of a user of this tenant."
            ) from None
    return list(ids)


def _control_free(value: str) -> str:
    return _CONTROL.sub("", value)


def _text(value: str, attribute: str, max_length: int, *, required: bool = False) -> str:
    if _CONTROL.search(value):
        raise ScimInvalidValue(f"{attribute} cannot contain control characters.")
    if len(value) > max_length:
        raise ScimInvalidValue(f"{attribute} is longer than {max_length} characters.")
    if required and not value.strip():
        raise ScimInvalidValue(f"{attribute} cannot be empty.")
    return value


def _optional_text(value: str | None, attribute: str, max_length: int) -> str | None:
    return None if value is None else _text(value, attribute, max_length)


def _check_profile(profile: dict[str, Any]) -> None:
    encoded = json.dumps(profile, separators=(",", ":"))
    if "\\u0000" in encoded:
        raise ScimInvalidValue("Attribute values cannot contain NUL characters.")
    if len(encoded) > MAX_PROFILE_BYTES:
        raise ScimInvalidValue(f"The user's attributes exceed {MAX_PROFILE_BYTES} bytes.")
