from __future__ import annotations

import os
import uuid

import pytest

from keys import envelope

DEK = os.urandom(32)
TENANT = uuid.uuid4()


def test_round_trip_and_version_header() -> None:
    blob = envelope.seal(DEK, 7, TENANT, "document", "doc-1", b"quarterly numbers")
    assert envelope.header_version(blob) == 7
    assert b"quarterly" not in blob
    assert envelope.open_(DEK, TENANT, "document", "doc-1", blob) == b"quarterly numbers"


def test_fresh_nonce_per_message() -> None:
    a = envelope.seal(DEK, 1, TENANT, "k", "o", b"same")
    b = envelope.seal(DEK, 1, TENANT, "k", "o", b"same")
    assert a != b


@pytest.mark.parametrize(
    ("tenant", "kind", "object_id"),
    [
        (uuid.uuid4(), "document", "doc-1"),
        (TENANT, "chunk", "doc-1"),
        (TENANT, "document", "doc-2"),
    ],
)
def test_ciphertext_moved_to_another_tenant_kind_or_row_fails(
    tenant: uuid.UUID, kind: str, object_id: str
) -> None:
    blob = envelope.seal(DEK, 1, TENANT, "document", "doc-1", b"secret")
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_(DEK, tenant, kind, object_id, blob)


def test_tampering_and_wrong_key_fail() -> None:
    blob = bytearray(envelope.seal(DEK, 1, TENANT, "document", "doc-1", b"secret"))
    flipped = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_(DEK, TENANT, "document", "doc-1", flipped)
    relabelled = bytes(blob[:3]) + (2).to_bytes(4, "big") + bytes(blob[7:])
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_(DEK, TENANT, "document", "doc-1", relabelled)
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_(os.urandom(32), TENANT, "document", "doc-1", bytes(blob))
    with pytest.raises(envelope.EnvelopeError):
        envelope.header_version(b"plaintext, not an envelope at all......")
