"""Actor pseudonyms: an audit event names a pseudonym, never an email or a user id.

Each subject ("user:<uuid>", "operator", "system", "scim") gets its own random 32-byte secret per
tenant (``audit_subjects``); the actor written into events is ``ps_`` + the first 32 hex digits of
HMAC-SHA256(secret, subject). While the secret exists, the tenant can resolve a user to their
pseudonym (to filter the log by user); erasing a subject (GDPR, issue 9) deletes the secret, after
which nothing links that subject's past events to them — and the chain, which hashes only the
pseudonym, still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid

OPERATOR_SUBJECT = "operator"
SYSTEM_SUBJECT = "system"
# A tenant's SCIM client (its IdP provisioning users and groups with the tenant's SCIM token).
SCIM_SUBJECT = "scim"
SECRET_BYTES = 32

PSEUDONYM = re.compile(r"^ps_[0-9a-f]{32}$")
_H = "[0-9a-fA-F]"
UUID_PATTERN = f"{_H}{{8}}-?{_H}{{4}}-?{_H}{{4}}-?{_H}{{4}}-?{_H}{{12}}"
_USER_SUBJECT = re.compile(rf"^user:({UUID_PATTERN})$")


def user_subject(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def pseudonym(secret: bytes, subject: str) -> str:
    return "ps_" + hmac.new(secret, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def normalize_subject(value: str) -> str | None:
    """The canonical subject for an ``actor`` filter, or None when it is not a subject.

    Accepts ``user:<uuid>`` (any UUID spelling), ``operator``, ``system`` and ``scim``.
    """
    if value in (OPERATOR_SUBJECT, SYSTEM_SUBJECT, SCIM_SUBJECT):
        return value
    match = _USER_SUBJECT.match(value)
    if match is None:
        return None
    try:
        return user_subject(uuid.UUID(match.group(1)))
    except ValueError:
        return None
