"""The sealed-message format (pure functions, no I/O).

    b"BW" | format (1 byte, = 1) | DEK version (4 bytes, big-endian) | nonce (12) | AES-256-GCM

The associated data binds the tenant, the object kind and the object id together with the
header, so a ciphertext copied to another row, object or tenant fails to open, and the version in
the header keeps old ciphertexts readable after rotation.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"BW"
FORMAT = 1
_HEADER = struct.Struct(">2sBI")
NONCE_BYTES = 12
DEK_BYTES = 32


class EnvelopeError(ValueError):
    """The blob is not a Bulwark envelope, or it does not open under this key and binding
    (a ValueError: what a ``residency.objects.Sealer`` raises for bytes it did not seal)."""


def associated_data(tenant_id: uuid.UUID, kind: str, object_id: str, header: bytes) -> bytes:
    if "|" in kind:
        raise ValueError("object kind may not contain '|'")
    return b"|".join((b"bulwark", tenant_id.bytes, kind.encode(), object_id.encode(), header))


def header_version(blob: bytes) -> int:
    if len(blob) < _HEADER.size + NONCE_BYTES + 16:
        raise EnvelopeError("too short to be an envelope")
    magic, fmt, version = _HEADER.unpack_from(blob)
    if magic != MAGIC or fmt != FORMAT:
        raise EnvelopeError("not a Bulwark envelope")
    return int(version)


def seal(
    dek: bytes, version: int, tenant_id: uuid.UUID, kind: str, object_id: str, plaintext: bytes
) -> bytes:
    header = _HEADER.pack(MAGIC, FORMAT, version)
    nonce = os.urandom(NONCE_BYTES)
    aad = associated_data(tenant_id, kind, object_id, header)
    return header + nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)


def open_(dek: bytes, tenant_id: uuid.UUID, kind: str, object_id: str, blob: bytes) -> bytes:
    header_version(blob)
    header, nonce = blob[: _HEADER.size], blob[_HEADER.size : _HEADER.size + NONCE_BYTES]
    aad = associated_data(tenant_id, kind, object_id, header)
    try:
        return AESGCM(dek).decrypt(nonce, blob[_HEADER.size + NONCE_BYTES :], aad)
    except InvalidTag:
        raise EnvelopeError("authentication failed (wrong key, tenant, kind or object)") from None
