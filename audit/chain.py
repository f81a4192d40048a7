"""The hash chain, as pure functions: event hashes (over ``audit.canon``) and the verifier.

Each tenant's events form one chain. An event's ``hash`` is the SHA-256 (hex) of the canonical
JSON (``audit.canon``: RFC 8785, named by the event's ``canon`` member) of all of its other
fields, ``prev_hash`` and ``canon`` included. Events written before RFC 8785 have no ``canon`` and
are hashed with the legacy encoding they were written with, so old chains still verify, and a
chain may hold legacy events followed by RFC 8785 ones. The first event of a chain links to
``GENESIS_HASH``. Anyone holding an export can recompute every hash with any RFC 8785
implementation; nothing here depends on the database.

The ``detail`` of an event may hold ids, counts, codes and hashes only — never plaintext content
(no names, emails, prompts or answers): ``check_detail`` enforces a narrow alphabet so that a
careless call site fails loudly instead of writing personal data into an immutable log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.canon import (
    CANON,
    CURRENT,
    MAX_SAFE_INTEGER,
    CanonError,
    encode_recorded,
    versioned,
)

GENESIS_HASH = "0" * 64

# The fields an event's hash covers, in the order exports list them. ``canon`` is left out of a
# legacy event (written before RFC 8785), which has none.
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
    CANON,
)
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")

CODE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Ids, codes, hashes (hex or base64): no spaces, no '@', nothing that reads as prose or an email.
_DETAIL_TEXT = re.compile(r"^[A-Za-z0-9._:/+=-]{0,128}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MAX_DETAIL_ITEMS = 100
_MAX_DETAIL_DEPTH = 3


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
    little nesting). Floats are refused too: their JSON spelling is not stable across languages;
    so are integers beyond ±(2**53 - 1), which RFC 8785 cannot encode (a larger count or size
    goes in as a string). A violation is a programming error (``ValueError``), never user input.
    """
    checked = _check_value(dict(detail), depth=0)
    assert isinstance(checked, dict)
    return checked


def _check_value(value: Any, *, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError("audit detail integers must be within 2**53 - 1; pass a string")
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
    """One event as the chain sees it: plain JSON values only. ``canon``: the encoding its hash
    is computed with (None: a legacy event, written before RFC 8785)."""

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
    canon: int | None = CURRENT
    hash: str = ""

    def hashed_fields(self) -> dict[str, Any]:
        return self._fields(HASHED_FIELDS)

    def compute_hash(self) -> str:
        """The hash of the fields, in the encoding the event records (``CanonError``: an
        encoding this version does not know, or a value it cannot encode)."""
        return sha256_hex(encode_recorded(self.hashed_fields()))

    def export(self) -> dict[str, Any]:
        """The event as exports write it: its hashed fields (no ``canon`` when legacy) and hash."""
        return self._fields(EXPORT_FIELDS)

    def _fields(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in names if name != CANON or self.canon is not None
        }


def seal(entry: ChainEntry) -> ChainEntry:
    """``entry`` with its ``hash`` filled in."""
    return dataclasses.replace(entry, hash=entry.compute_hash())


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
            or not hash_matches(entry)
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


def hash_matches(entry: ChainEntry) -> bool:
    """Whether ``entry``'s stored hash is the hash of its fields (False, not an error, for an
    event naming an unknown encoding or holding a value it cannot encode)."""
    try:
        return entry.compute_hash() == entry.hash
    except CanonError:
        return False


def checkpoint_document(
    *, tenant_id: str, sequence: int, head_hash: str, signed_at: str, key_id: str, algorithm: str
) -> dict[str, Any]:
    """What a checkpoint signs: exactly these six fields and ``canon`` (the signed bytes are its
    canonical JSON; checkpoints signed before RFC 8785 have no ``canon``)."""
    return versioned(
        {
            "algorithm": algorithm,
            "head_hash": head_hash,
            "key_id": key_id,
            "sequence": sequence,
            "signed_at": signed_at,
            "tenant_id": tenant_id,
        }
    )
