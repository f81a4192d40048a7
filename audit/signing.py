"""The deployment's Ed25519 key that signs audit-chain checkpoints and subject-access reports.

A signed checkpoint (tenant, sequence, head hash, time) lets a customer keep evidence outside our
databases: anyone who later holds an export can check that the chain they were given still
contains the head we signed. The key is the deployment's, not a tenant's: in production its PEM
file must be configured (``BULWARK_AUDIT__SIGNING_KEY_FILE``) so that every replica signs with the
same key; outside production one is generated once into the data dir, like the other secrets.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.canon import CANON, CURRENT, CanonError, canonical_json, version_of
from kernel.settings import Settings

ALGORITHM = "Ed25519"
GENERATED_KEY_FILE = "audit-signing.pem"


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key_raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # Names the key in every checkpoint, so a verifier can tell rotated keys apart.
        self.key_id = hashlib.sha256(self.public_key_raw).hexdigest()[:16]
        self.algorithm = ALGORITHM

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key_raw).decode("ascii")

    def sign(self, document: Mapping[str, Any]) -> tuple[bytes, str]:
        """The canonical JSON of ``document`` and its signature (base64).

        Only a document naming the current encoding in its ``canon`` member is signed (see
        ``audit.canon.versioned``): a verifier learns from the document itself how to rebuild
        the signed bytes, and the version is covered by the signature.
        """
        if CANON not in document or version_of(document) != CURRENT:
            raise CanonError(f"a signed document names the current {CANON} version")
        payload = canonical_json(dict(document))
        return payload, base64.b64encode(self._key.sign(payload)).decode("ascii")

    @classmethod
    def from_pem(cls, pem: bytes) -> CheckpointSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError("the audit signing key must be an Ed25519 private key")
        return cls(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointSigner:
        configured = settings.audit.signing_key_file
        if configured is not None:
            if not configured.is_file():
                raise RuntimeError(f"audit signing key file {configured} does not exist")
            return cls.from_pem(configured.read_bytes())
        if settings.environment == "production":
            raise RuntimeError("BULWARK_AUDIT__SIGNING_KEY_FILE must be set in production")
        return cls.from_pem(_generated_key(settings.data_dir.absolute() / GENERATED_KEY_FILE))


def _generated_key(path: Path) -> bytes:
    """The embedded default's key: created once (0600), atomically, then always reused."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        # link() never replaces: a process that lost the race reads the winner's key.
        os.link(staging, path)
    except FileExistsError:
        pass
    finally:
        staging.unlink(missing_ok=True)
    return path.read_bytes()
