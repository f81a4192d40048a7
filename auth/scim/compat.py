"""What real IdPs send that a strict reading of RFC 7644 would refuse, normalised before a
payload is validated.

Handled here (pure functions over the decoded JSON):

- Okta and others send a ``display`` in group members (Bulwark keeps no member display: dropped);
- Microsoft Entra sends the EnterpriseUser ``manager`` as a bare id string, and without ``$ref``
  (RFC 7643 marks ``$ref`` required): wrapped as ``{"value": id, "$ref": <user URL>}``;
- a PATCH body with ``operations`` in another case, or without its ``schemas``;
- a PATCH without ``path`` whose value repeats the resource's ``id`` or ``meta`` (Okta): dropped.

Handled by scim2-models itself (``auth.scim.resources.POLICY`` and its readers): Entra's
capitalised operation names ("Replace", "Add", "Remove"), booleans sent as strings ("False"),
member removal by ``members[value eq "..."]`` or by the value of a "remove", PATCH without a path
(value is an object of attributes, keys may be attribute paths), and
``emails[type eq "work"].value`` on a user without such an email (the entry is created).
"""

from __future__ import annotations

import copy
from typing import Any

from auth.scim.resources import ENTERPRISE_SCHEMA, PATCH_SCHEMA

_MANAGER_PATH = f"{ENTERPRISE_SCHEMA}:manager".lower()


def user_payload(payload: Any, base_url: str) -> Any:
    if not isinstance(payload, dict):
        return payload
    normalised = copy.deepcopy(payload)
    for key, value in normalised.items():
        if key.lower() == ENTERPRISE_SCHEMA.lower() and isinstance(value, dict):
            _extension(value, base_url)
        elif key.lower() == _MANAGER_PATH:
            normalised[key] = _manager(value, base_url)
    return normalised


def group_payload(payload: Any) -> Any:
    if not isinstance(payload, dict):
        return payload
    normalised = copy.deepcopy(payload)
    for key, value in normalised.items():
        if key.lower() == "members":
            normalised[key] = _without_display(value)
    return normalised


def patch_payload(payload: Any, *, resource: str, base_url: str) -> Any:
    """``resource`` is "User" or "Group"."""
    if not isinstance(payload, dict):
        return payload
    normalised = copy.deepcopy(payload)
    for key in list(normalised):
        if key.lower() == "operations" and key != "Operations":
            normalised["Operations"] = normalised.pop(key)
    normalised.setdefault("schemas", [PATCH_SCHEMA])
    operations = normalised.get("Operations")
    if isinstance(operations, list):
        normalised["Operations"] = [
            _operation(operation, resource, base_url) if isinstance(operation, dict) else operation
            for operation in operations
        ]
    return normalised


def _operation(operation: dict[str, Any], resource: str, base_url: str) -> dict[str, Any]:
    operation = {
        (key.lower() if key.lower() in ("op", "path", "value") else key): value
        for key, value in operation.items()
    }
    path = operation.get("path")
    value = operation.get("value")
    if isinstance(path, str):
        lowered = path.lower().strip()
        if resource == "Group" and lowered.split("[", 1)[0].strip() == "members":
            operation["value"] = _without_display(value)
        elif resource == "User" and lowered == _MANAGER_PATH and value is not None:
            operation["value"] = _manager(value, base_url)
        elif (
            resource == "User" and lowered == ENTERPRISE_SCHEMA.lower() and isinstance(value, dict)
        ):
            _extension(value, base_url)
    elif path is None and isinstance(value, dict):
        for key in [key for key in value if key.lower() in ("id", "meta")]:
            del value[key]
        if resource == "Group":
            operation["value"] = group_payload(value)
        else:
            operation["value"] = user_payload(value, base_url)
    return operation


def _extension(extension: dict[str, Any], base_url: str) -> None:
    for key, value in list(extension.items()):
        if key.lower() == "manager" and value is not None:
            extension[key] = _manager(value, base_url)


def _manager(value: Any, base_url: str) -> Any:
    if isinstance(value, str):
        value = {"value": value}
    if not isinstance(value, dict):
        return value
    manager = {k: v for k, v in value.items() if k.lower() != "displayname"}
    reference = next((k for k in manager if k.lower() == "$ref"), None)
    manager_id = next((v for k, v in manager.items() if k.lower() == "value"), None)
    if reference is None and isinstance(manager_id, str) and manager_id:
        manager["$ref"] = f"{base_url}/Users/{manager_id}"
    return manager


def _without_display(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_display(item) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() != "display"}
    return value
