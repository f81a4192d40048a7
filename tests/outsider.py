"""An outside verifier of Bulwark's audit hashes and signatures, written from the README's
"Verifying without Bulwark" section alone: it imports the standard library, ``rfc8785`` and
``cryptography`` and nothing of Bulwark (``tests/unit/test_audit_canon.py`` holds that), so the
tests that use it check what a customer's auditor can check with the public key and an export.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
CHECKPOINT_FIELDS = ("algorithm", "head_hash", "key_id", "sequence", "signed_at", "tenant_id")


def encode(document: Mapping[str, Any]) -> bytes:
    """The bytes a hashed or signed object stands for, by its ``canon`` member."""
    if "canon" not in document:
        # Written before RFC 8785: the legacy encoding.
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    if document["canon"] == 2 and type(document["canon"]) is int:
        return rfc8785.dumps(dict(document))
    raise ValueError(f"unknown canon {document['canon']!r}")


def event_hash(event: Mapping[str, Any]) -> str:
    """An event's hash: SHA-256 of the canonical JSON of every member but ``hash``."""
    return hashlib.sha256(encode({k: v for k, v in event.items() if k != "hash"})).hexdigest()


def from_csv_row(row: Mapping[str, str]) -> dict[str, Any]:
    """A row of the CSV export as the event it records: ``sequence`` and ``canon`` are
    numbers, ``detail`` is JSON, an empty ``canon`` is absent and other empty cells are null."""
    event: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items() if k != "canon"}
    event["sequence"] = int(row["sequence"])
    event["detail"] = json.loads(row["detail"])
    if row["canon"]:
        event["canon"] = int(row["canon"])
    return event


def chain_is_intact(events: Iterable[Mapping[str, Any]]) -> bool:
    """Sequences 1, 2, ...; each event links to the previous hash; each hash recomputes (in the
    encoding the event names: one naming an unknown encoding breaks the chain)."""
    previous = GENESIS
    for expected, event in enumerate(events, start=1):
        if event["sequence"] != expected or event["prev_hash"] != previous:
            return False
        try:
            if event_hash(event) != event["hash"]:
                return False
        except ValueError:
            return False
        previous = event["hash"]
    return True


def public_key(raw_b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw_b64))


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte key, base64: how checkpoints and reports name the key that signed them."""
    return base64.b64encode(key.public_bytes_raw()).decode("ascii")


def verify_checkpoint(checkpoint: Mapping[str, Any], key: Ed25519PublicKey) -> None:
    """Raises ``InvalidSignature`` unless ``key`` signed this checkpoint."""
    names = (*CHECKPOINT_FIELDS, "canon") if "canon" in checkpoint else CHECKPOINT_FIELDS
    signed = {name: checkpoint[name] for name in names}
    key.verify(base64.b64decode(checkpoint["signature"]), encode(signed))


def verify_report(report: Mapping[str, Any], signature: str, key: Ed25519PublicKey) -> None:
    """Raises ``InvalidSignature`` unless ``key`` signed this subject-access report."""
    key.verify(base64.b64decode(signature), encode(report))
