"""HTML form fields → the REST API's JSON bodies. Shape only: the API validates every value
(a bad one comes back as its problem details and is shown on the page)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FormError(Exception):
    """A field the console cannot even shape into a request (shown like an API refusal)."""


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def optional(form: Mapping[str, Any], name: str) -> str | None:
    return text(form, name) or None


def checked(form: Mapping[str, Any], name: str) -> bool:
    return text(form, name) in ("on", "true", "1")


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


def integer(form: Mapping[str, Any], name: str) -> int | None:
    value = text(form, name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise FormError(f"{name.replace('_', ' ')} must be a whole number") from None


def number(form: Mapping[str, Any], name: str) -> float | None:
    value = text(form, name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise FormError(f"{name.replace('_', ' ')} must be a number") from None


def attributes(value: str) -> dict[str, list[str]]:
    """``key=value1,value2`` per line."""
    out: dict[str, list[str]] = {}
    for line in value.splitlines():
        if not line.strip():
            continue
        key, sep, values = line.partition("=")
        if not sep or not key.strip():
            raise FormError(f"attributes: write one key=value1,value2 per line (got {line!r})")
        out.setdefault(key.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return out


def acl(form: Mapping[str, Any], all_values: Mapping[str, list[str]]) -> dict[str, Any]:
    """The ACL editor: visibility, ticked groups and users, classification, attributes."""
    return {
        "visibility": text(form, "visibility") or "restricted",
        "groups": all_values.get("groups", []),
        "users": all_values.get("users", []),
        "classification": integer(form, "classification") or 0,
        "attributes": attributes(text(form, "attributes")),
    }


def user_update(form: Mapping[str, Any], roles: list[str]) -> dict[str, Any]:
    return {
        "roles": roles,
        "clearance": integer(form, "clearance") or 0,
        "attributes": attributes(text(form, "attributes")),
        "active": checked(form, "active"),
    }


def role_mappings(form: Mapping[str, Any]) -> dict[str, Any]:
    """``idp group = role`` per line."""
    mappings = []
    for line in text(form, "mappings").splitlines():
        if not line.strip():
            continue
        group, sep, role = line.rpartition("=")
        if not sep or not group.strip():
            raise FormError(f"mappings: write one 'IdP group = role' per line (got {line!r})")
        mappings.append({"idp_group": group.strip(), "role": role.strip()})
    return {"default_role": text(form, "default_role") or "member", "mappings": mappings}


def oidc(form: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "issuer": optional(form, "issuer"),
        "client_id": text(form, "client_id"),
        "scope": text(form, "scope") or "openid email profile",
        "enabled": checked(form, "enabled"),
        "audience": optional(form, "audience"),
        "claims": {
            key: value
            for key, value in (
                ("user_id", optional(form, "claim_user_id")),
                ("groups", optional(form, "claim_groups")),
                ("roles", optional(form, "claim_roles")),
            )
            if value
        },
    }
    secret = optional(form, "client_secret")
    if secret:  # empty: keep the stored (sealed) secret
        body["client_secret"] = secret
    return body


def saml(form: Mapping[str, Any]) -> dict[str, Any]:
    pem = text(form, "certificates")
    blocks = [
        "-----BEGIN CERTIFICATE-----" + block
        for block in pem.split("-----BEGIN CERTIFICATE-----")
        if block.strip()
    ]
    return {
        "idp_entity_id": text(form, "idp_entity_id"),
        "sso_url": text(form, "sso_url"),
        "certificates": [block.strip() + "\n" for block in blocks],
        "want_assertions_signed": checked(form, "want_assertions_signed"),
        "want_messages_signed": checked(form, "want_messages_signed"),
        "enabled": checked(form, "enabled"),
    }


def model_policy(form: Mapping[str, Any], all_values: Mapping[str, list[str]]) -> dict[str, Any]:
    return {
        "pinned": optional(form, "pinned"),
        "allowed": all_values.get("allowed") or None,
        "forbidden": all_values.get("forbidden") or None,
        "fallback": optional(form, "fallback"),
    }


def quotas(form: Mapping[str, Any]) -> dict[str, Any]:
    def limit(prefix: str) -> dict[str, Any] | None:
        tokens, usd = integer(form, f"{prefix}_tokens"), number(form, f"{prefix}_usd")
        if tokens is None and usd is None:
            return None
        return {"tokens": tokens, "usd": usd}

    return {
        "tenant": {"day": limit("tenant_day"), "month": limit("tenant_month")},
        "per_user": {"day": limit("user_day"), "month": limit("user_month")},
        "requests": {
            "identity_per_minute": integer(form, "identity_per_minute"),
            "tenant_per_minute": integer(form, "tenant_per_minute"),
        },
    }


def kms(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "provider": text(form, "provider"),
        "key_id": text(form, "key_id"),
        "region": text(form, "region"),
        "role_arn": optional(form, "role_arn"),
        "external_id": optional(form, "external_id"),
    }


def sar(form: Mapping[str, Any]) -> dict[str, Any]:
    by = text(form, "subject_by") or "email"
    if by not in ("email", "user_id", "external_id"):
        raise FormError("subject: email, user id or external id")
    body: dict[str, Any] = {"subject": {by: text(form, "subject")}, "kind": text(form, "kind")}
    if optional(form, "documents"):
        body["documents"] = text(form, "documents")
    return body
