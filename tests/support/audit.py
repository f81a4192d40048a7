"""The audit log as an auditor and an operator see it: the deployment's signing key, the SQLite
append-only triggers, and event hashes as Bulwark computed them before RFC 8785."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tests.support.deployments import Deployment

SQLITE_TRIGGERS = {
    "UPDATE": "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "DELETE": "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
}


def deployment_signing_key(deployment: Deployment) -> Ed25519PrivateKey:
    pem = (Path(deployment.settings.data_dir) / "audit-signing.pem").read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private


def deployment_key(deployment: Deployment) -> Ed25519PublicKey:
    """The deployment's public key, as its operator hands it to an auditor (not as a signed
    document names it)."""
    return deployment_signing_key(deployment).public_key()


def hash_as_before(event: dict[str, Any]) -> str:
    """An event's hash exactly as Bulwark computed it before RFC 8785 (no ``canon``)."""
    fields = {k: v for k, v in event.items() if k not in ("hash", "canon")}
    assert len(fields) == 12
    encoded = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
