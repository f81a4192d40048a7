"""Replacement values for detected spans, and the per-request pseudonym vault. Pure functions.

The vault is the only place a pseudonym's original lives: in memory, for one request. It has no
serialised form and its ``repr`` shows counts only, so it cannot end up in a log or a store by
accident.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from dlp.policies import Action

HASH_CHARS = 12
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{1,39})_([0-9]{1,6})>")


def normalise(value: str) -> str:
    """How values are compared (vault reuse, hashing, grounding): case- and space-insensitive."""
    return " ".join(value.casefold().split())


@dataclass(slots=True, repr=False)
class PseudonymVault:
    """``<PERSON_1>`` ↔ original, for one request only; never stored, never logged."""

    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _by_token: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def token(self, entity_type: str, value: str) -> str:
        key = (entity_type, normalise(value))
        token = self._by_value.get(key)
        if token is None:
            self._counters[entity_type] = self._counters.get(entity_type, 0) + 1
            token = f"<{entity_type}_{self._counters[entity_type]}>"
            self._by_value[key] = token
            self._by_token[token] = value
        return token

    def restore(self, text: str) -> str:
        """Put the originals back (for the requester's eyes only)."""
        return _PLACEHOLDER.sub(lambda m: self._by_token.get(m.group(0), m.group(0)), text)

    def originals(self) -> list[str]:
        return list(self._by_token.values())

    def __len__(self) -> int:
        return len(self._by_token)

    def __repr__(self) -> str:
        return f"PseudonymVault({len(self)} entries)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a pseudonym vault is never serialised")


def mask(value: str, keep: int = 4) -> str:
    """Star every letter and digit except the last ``keep`` (none for short values)."""
    alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
    kept = set(alnum[-keep:]) if len(alnum) > 2 * keep else set()
    return "".join("*" if ch.isalnum() and i not in kept else ch for i, ch in enumerate(value))


def keyed_hash(key: bytes, entity_type: str, value: str) -> str:
    digest = hmac.new(key, f"{entity_type}\x00{normalise(value)}".encode(), hashlib.sha256)
    return f"<{entity_type}:{digest.hexdigest()[:HASH_CHARS]}>"


def replacement(
    action: Action, entity_type: str, value: str, *, key: bytes, vault: PseudonymVault | None
) -> str | None:
    """The text that replaces ``value``; None leaves it in place."""
    if action is Action.REDACT:
        return f"<{entity_type}>"
    if action is Action.MASK:
        return mask(value)
    if action is Action.HASH:
        return keyed_hash(key, entity_type, value)
    if action is Action.PSEUDONYMIZE:
        if vault is None:
            return f"<{entity_type}>"
        return vault.token(entity_type, value)
    return None
