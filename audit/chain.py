"""The hash chain, as pure functions: canonical encoding, event hashes, and the verifier.

Each tenant's events form one chain. An event's ``hash`` is the SHA-256 (hex) of the canonical
encoding of all of its fields, ``prev_hash`` included: JSON with sorted keys, compact separators,
no ASCII escaping, encoded as UTF-8. The first event of a chain links to ``GENESIS_HASH``. Anyone
holding an export can recompute every hash with a few lines of code in any language; nothing here
depends on the database.

The ``detail`` of an event may hold ids, counts, codes and hashes only — never plaintext content
(no names, emails, prompts or answers): ``check_detail`` enforces a narrow alphabet so that a
careless call site fails loudly instead of writing personal data into an immutable log.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# The fields an event's hash covers, in the order exports list them.
HASHED_FIELDS = (
    "id",
    "tenant_id",
    "sequence",
    "occurred_at",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "request_id",
    "detail",
    "prev_hash",
)
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")

CODE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Ids, codes, hashes (hex or base64): no spaces, no '@', nothing that reads as prose or an email.
_DETAIL_TEXT = re.compile(r"^[A-Za-z0-9._:/+=-]{0,128}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MAX_DETAIL_ITEMS = 100
_MAX_DETAIL_DEPTH = 3


def canonical_json(value: Any) -> bytes:
    """The one encoding that is hashed and signed: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: one spelling per instant, on every database."""
    if moment.tzinfo is None:
        raise ValueError("audit times are UTC-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_identifier(value: str) -> str:
    """A resource id as events store it: a non-empty id, code or hash, nothing else."""
    if not value or not _DETAIL_TEXT.match(value):
        raise ValueError("audit resource ids must be ids, codes or hashes")
    return value


def check_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``detail`` as a plain dict after checking it holds no plaintext content.

    Allowed: short code-like strings, integers, booleans, null, and lists/objects of those (a
    little nesting). Floats are refused too: their JSON spelling is not stable across languages.
    A violation is a programming error (``ValueError``), never user input.
    """
    checked = _check_value(dict(detail), depth=0)
    assert isinstance(checked, dict)
    return checked


def _check_value(value: Any, *, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if not _DETAIL_TEXT.match(value):
            raise ValueError("audit detail strings must be ids, codes or hashes")
        return value
    if depth >= _MAX_DETAIL_DEPTH:
        raise ValueError("audit detail is nested too deeply")
    if isinstance(value, Mapping):
        if len(value) > _MAX_DETAIL_ITEMS:
            raise ValueError("audit detail has too many keys")
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _DETAIL_KEY.match(key):
                raise ValueError(f"invalid audit detail key {key!r}")
            checked[key] = _check_value(item, depth=depth + 1)
        return checked
    if isinstance(value, list | tuple):
        if len(value) > _MAX_DETAIL_ITEMS:
            raise ValueError("audit detail has too many items")
        return [_check_value(item, depth=depth + 1) for item in value]
    raise ValueError(f"audit detail values cannot be {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One event as the chain sees it: plain JSON values only."""

    id: str
    tenant_id: str
    sequence: int
    occurred_at: str
    actor: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    request_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str = ""

    def hashed_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HASHED_FIELDS}

    def compute_hash(self) -> str:
        return sha256_hex(canonical_json(self.hashed_fields()))

    def export(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EXPORT_FIELDS}


def seal(entry: ChainEntry) -> ChainEntry:
    """``entry`` with its ``hash`` filled in."""
    return ChainEntry(**{**entry.hashed_fields(), "hash": entry.compute_hash()})


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    events_checked: int
    first_bad_sequence: int | None


class ChainVerifier:
    """Walks one tenant's events in sequence order and finds the first place the chain breaks.

    Checks, for every event: its sequence is the next one (no gap, no repeat), its stored hash is
    the recomputed hash of its fields, and its ``prev_hash`` is the previous event's hash. At the
    end the stored head (sequence and hash) must be the last event, so a deleted tail is caught
    too. ``first_bad_sequence`` is the lowest sequence at which the stored chain stops being a
    valid chain: a tampered event's own sequence, the first missing sequence of a gap, or the
    sequence after the last surviving event when the tail is gone.
    """

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.checked = 0
        self.first_bad: int | None = None
        self._next_sequence = 1
        self._prev_hash = GENESIS_HASH

    def _bad(self, sequence: int) -> None:
        if self.first_bad is None or sequence < self.first_bad:
            self.first_bad = sequence

    def feed(self, entry: ChainEntry) -> None:
        self.checked += 1
        if entry.sequence != self._next_sequence:
            self._bad(min(entry.sequence, self._next_sequence))
        elif (
            entry.tenant_id != self.tenant_id
            or entry.prev_hash != self._prev_hash
            or not _HASH.match(entry.hash)
            or entry.compute_hash() != entry.hash
        ):
            self._bad(entry.sequence)
        # Carry on from what is stored, so one bad event does not hide later ones' state.
        self._next_sequence = entry.sequence + 1
        self._prev_hash = entry.hash

    def finish(self, head_sequence: int | None, head_hash: str | None) -> Verification:
        last_sequence = self._next_sequence - 1
        if head_sequence is None:
            # No head row: only an empty chain may lack one.
            if self.checked:
                self._bad(1)
        elif head_sequence != last_sequence:
            self._bad(min(head_sequence, last_sequence) + 1)
        elif head_hash != self._prev_hash:
            self._bad(max(last_sequence, 1))
        return Verification(
            ok=self.first_bad is None,
            events_checked=self.checked,
            first_bad_sequence=self.first_bad,
        )


def checkpoint_payload(
    *, tenant_id: str, sequence: int, head_hash: str, signed_at: str, key_id: str, algorithm: str
) -> bytes:
    """The bytes a checkpoint signs: the canonical JSON of exactly these six fields."""
    return canonical_json(
        {
            "algorithm": algorithm,
            "head_hash": head_hash,
            "key_id": key_id,
            "sequence": sequence,
            "signed_at": signed_at,
            "tenant_id": tenant_id,
        }
    )
