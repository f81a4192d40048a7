"""The embedded default's KMS: key-encryption keys in a JSON key file, one file per region.

Each KEK is 32 random bytes with a state (``enabled``/``disabled``); wrapping is AES-256-GCM with
the encryption context as associated data, so a wrapped key only unwraps for the tenant and
purpose it was made for. The file is re-read when it changes on disk, so disabling a key from
another process (``bulwark kms disable-key``) takes effect at the next unwrap. Destroying a key
removes its material: everything wrapped under it, backups included, is then unreadable.

The key file is this KMS's only reply: a file that does not parse (cut short, emptied, edited
by hand) or an entry whose material is not a 32-byte key is ``KmsUnreachable`` (503, and never
rewritten: a write would drop every key it holds), not a missing key and not an unhandled error.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.kms import Context, DataKey, KeyAccessDenied, KeyInvalid, KeyRef, KmsUnreachable

_NONCE = 12
_KEK_BYTES = 32


def _aad(key_id: str, context: Context) -> bytes:
    return json.dumps(
        {"key_id": key_id, "context": context}, sort_keys=True, separators=(",", ":")
    ).encode()


class LocalKms:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._cache: tuple[float, dict[str, Any]] | None = None

    # -- the key file ---------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            mtime = self.key_file.stat().st_mtime_ns
        except FileNotFoundError:
            return {"keys": {}}  # a fresh file: its first key creates it
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        try:
            data = json.loads(self.key_file.read_bytes())
        except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
            raise KmsUnreachable(f"key file {self.key_file.name} does not parse") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
            raise KmsUnreachable(f"key file {self.key_file.name} holds no key table")
        self._cache = (mtime, data)
        return data

    @contextmanager
    def _locked_update(self) -> Iterator[dict[str, Any]]:
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.key_file.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache = None
            data = self._read()
            yield data
            tmp = self.key_file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.key_file)
            self._cache = None

    def _material(self, key: KeyRef, context: Context) -> bytes:
        if key.provider != "local":
            raise KeyInvalid("not a local key")
        entry = self._read()["keys"].get(key.key_id)
        if entry is None:
            raise KeyAccessDenied(f"local key {key.key_id} does not exist")
        if not isinstance(entry, dict):
            raise KmsUnreachable(f"local key {key.key_id}: not a key entry")
        if entry.get("state") != "enabled" or "material" not in entry:
            raise KeyAccessDenied(f"local key {key.key_id} is {entry.get('state', 'destroyed')}")
        # The key policy: a key owned by a tenant serves only that tenant's contexts.
        owner = entry.get("owner")
        if owner is not None and context.get("tenant_id") != owner:
            raise KeyAccessDenied(f"local key {key.key_id} belongs to another tenant")
        try:
            material = base64.b64decode(entry["material"], validate=True)
        except (TypeError, ValueError):  # binascii.Error is a ValueError
            material = b""
        if len(material) != _KEK_BYTES:
            raise KmsUnreachable(f"local key {key.key_id}: material is not a 32-byte key")
        return material

    def create_key_sync(self, description: str = "", owner: str | None = None) -> KeyRef:
        key_id = f"local-{uuid.uuid4()}"
        with self._locked_update() as data:
            data["keys"][key_id] = {
                "material": base64.b64encode(secrets.token_bytes(32)).decode(),
                "state": "enabled",
                "description": description,
                "owner": owner,
            }
        return KeyRef(provider="local", key_id=key_id)

    def set_state(self, key_id: str, state: str) -> None:
        """Enable or disable a key (the customer revoking or restoring access)."""
        if state not in ("enabled", "disabled"):
            raise ValueError(state)
        with self._locked_update() as data:
            entry = data["keys"].get(key_id)
            if not isinstance(entry, dict):
                raise KeyInvalid(f"no local key {key_id}")
            if "material" not in entry:
                raise ValueError(f"local key {key_id} is destroyed")
            entry["state"] = state

    def key_ids(self) -> list[str]:
        return sorted(self._read().get("keys", {}))

    # -- KmsPort --------------------------------------------------------------------------
    async def generate_data_key(self, key: KeyRef, context: Context) -> DataKey:
        plaintext = secrets.token_bytes(32)
        return DataKey(plaintext=plaintext, wrapped=await self.encrypt(key, plaintext, context))

    async def encrypt(self, key: KeyRef, plaintext: bytes, context: Context) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self._material(key, context)).encrypt(
            nonce, plaintext, _aad(key.key_id, context)
        )

    async def decrypt(self, key: KeyRef, wrapped: bytes, context: Context) -> bytes:
        material = self._material(key, context)
        try:
            return AESGCM(material).decrypt(
                wrapped[:_NONCE], wrapped[_NONCE:], _aad(key.key_id, context)
            )
        except InvalidTag:
            raise KeyAccessDenied("wrapped key does not open under this key and context") from None

    async def re_encrypt(
        self, source: KeyRef, wrapped: bytes, context: Context, destination: KeyRef
    ) -> bytes:
        return await self.encrypt(
            destination, await self.decrypt(source, wrapped, context), context
        )

    async def create_key(self, *, description: str, owner: str | None) -> KeyRef:
        return await asyncio.to_thread(self.create_key_sync, description, owner)

    async def destroy_key(self, key: KeyRef) -> None:
        def destroy() -> None:
            with self._locked_update() as data:
                entry = data["keys"].get(key.key_id)
                if isinstance(entry, dict):
                    entry.pop("material", None)
                    entry["state"] = "destroyed"

        await asyncio.to_thread(destroy)
