"""Bearer-secret format and hashing (pure functions), shared by API keys, sessions and SCIM
tokens.

A secret reads ``<prefix><tenant-id>_<row-id>_<secret>`` (``bwk_`` API key, ``bws_`` session,
``bsc_`` SCIM token): the tenant id routes the lookup to the tenant's region without any global
index, the row id finds the row, and only the HMAC-SHA256 of the secret (keyed with the deployment
secret, so a leaked database alone cannot be brute-forced offline) is stored.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "bwk_"
SESSION_PREFIX = "bws_"
SCIM_PREFIX = "bsc_"
_FORMAT = re.compile(r"^(bwk|bws|bsc)_([0-9a-f]{32})_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    secret: str


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, 256 bits


def format_key(tenant_id: uuid.UUID, key_id: uuid.UUID, secret: str, prefix: str = PREFIX) -> str:
    return f"{prefix}{tenant_id.hex}_{key_id.hex}_{secret}"


def parse_key(raw: str, prefix: str = PREFIX) -> ParsedKey | None:
    match = _FORMAT.fullmatch(raw)
    if match is None or f"{match.group(1)}_" != prefix:
        return None
    return ParsedKey(uuid.UUID(hex=match.group(2)), uuid.UUID(hex=match.group(3)), match.group(4))


def hash_secret(secret: str, pepper: str) -> str:
    return hmac.digest(pepper.encode(), secret.encode(), "sha256").hex()


def verify_secret(secret: str, stored_hash: str, pepper: str) -> bool:
    return hmac.compare_digest(hash_secret(secret, pepper), stored_hash)
