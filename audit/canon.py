"""One canonical JSON for everything Bulwark hashes or signs: RFC 8785 (JCS), through ``rfc8785``.

Audit events (their ``hash``), chain checkpoints and subject-access reports (their Ed25519
``signature``) are all bytes made from a JSON object. Each such object names the encoding of
those bytes in a ``canon`` member, so that anyone can recompute them with any RFC 8785
implementation, in any language, without Bulwark's code:

- ``"canon": 2`` — RFC 8785: keys sorted by their UTF-16 code units, no whitespace, strings
  escaped minimally and written as UTF-8, numbers in ECMAScript's shortest form. Everything
  written now.
- no ``canon`` member — written before RFC 8785 was adopted (version 1, legacy): Python's
  ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8.
  Read and verified, never written any more. For the objects Bulwark wrote (ASCII keys, no
  floats, integers below 2**53) it yields the same bytes as RFC 8785; it differs in the sort
  order of non-ASCII keys, in the spelling of floats, and in accepting integers beyond 2**53.
  Subject-access reports were encoded with ``ensure_ascii=True``; they hold ids, counts and codes
  only (ASCII), for which both spellings are the same bytes.

The version is part of the object, hence of the hashed or signed bytes: it cannot be changed
without breaking the hash or the signature. Any other ``canon`` value is refused.

What RFC 8785 cannot encode is refused (``CanonError``), never approximated: NaN and infinities,
integers beyond ±(2**53 - 1) (JSON numbers are IEEE 754 doubles; RFC 8785 section 3.2.2.3 asks for
larger ones as strings), lone surrogates, non-string keys and non-JSON types. Those are
programming errors: the audit detail rules (``audit.chain.check_detail``) keep them out of events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rfc8785

CANON = "canon"
LEGACY = 1
JCS = 2
CURRENT = JCS
# The largest integer RFC 8785 (and every JSON reader that parses numbers as doubles) keeps exact.
MAX_SAFE_INTEGER = 2**53 - 1


class CanonError(ValueError):
    """A value the canonical encoding cannot represent, or an unknown ``canon`` version."""


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value``: the one encoding Bulwark hashes and signs."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as refused:
        raise CanonError(f"not canonical JSON: {refused}") from refused


def versioned(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with the ``canon`` member of the encoding written now."""
    if CANON in document:
        raise CanonError(f"{CANON!r} is reserved for the encoding version")
    return {**document, CANON: CURRENT}


def version_of(document: Mapping[str, Any]) -> int:
    """The encoding ``document`` records: its ``canon`` member, or legacy when it has none."""
    if CANON not in document:
        return LEGACY
    version = document[CANON]
    # ``True == 1`` in Python: only a real integer names a version.
    if type(version) is not int or version != JCS:
        raise CanonError(f"unknown {CANON} version {version!r}")
    return version


def encode_recorded(document: Mapping[str, Any]) -> bytes:
    """The bytes ``document`` was hashed or signed as, by the version it records."""
    if version_of(document) == LEGACY:
        return _legacy_json(document)
    return canonical_json(dict(document))


def _legacy_json(value: Any) -> bytes:
    """Version 1, exactly as Bulwark wrote it before RFC 8785: for verifying old rows only."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as refused:
        raise CanonError(f"not legacy canonical JSON: {refused}") from refused


__all__ = [
    "CANON",
    "CURRENT",
    "JCS",
    "LEGACY",
    "MAX_SAFE_INTEGER",
    "CanonError",
    "canonical_json",
    "encode_recorded",
    "version_of",
    "versioned",
]
