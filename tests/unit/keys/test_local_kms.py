from __future__ import annotations

from pathlib import Path

import pytest

from keys.adapters.local import LocalKms
from keys.kms import KeyAccessDenied, KeyRef

CONTEXT = {"tenant_id": "t1", "purpose": "bulwark-dek", "version": "1"}


async def test_wrap_unwrap_is_bound_to_key_and_context(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "kms.key")
    key = await kms.create_key(description="t1", owner="t1")
    other = await kms.create_key(description="t2", owner=None)
    generated = await kms.generate_data_key(key, CONTEXT)
    assert len(generated.plaintext) == 32
    assert generated.plaintext not in generated.wrapped
    assert await kms.decrypt(key, generated.wrapped, CONTEXT) == generated.plaintext
    with pytest.raises(KeyAccessDenied):
        await kms.decrypt(key, generated.wrapped, {**CONTEXT, "tenant_id": "t2"})
    with pytest.raises(KeyAccessDenied):
        await kms.decrypt(other, generated.wrapped, CONTEXT)
    moved = await kms.re_encrypt(key, generated.wrapped, CONTEXT, other)
    assert await kms.decrypt(other, moved, CONTEXT) == generated.plaintext


async def test_disable_is_seen_by_another_instance_and_destroy_is_final(tmp_path: Path) -> None:
    path = tmp_path / "kms.key"
    kms, other_process = LocalKms(path), LocalKms(path)
    key = await kms.create_key(description="t1", owner="t1")
    wrapped = (await kms.generate_data_key(key, CONTEXT)).wrapped
    await other_process.decrypt(key, wrapped, CONTEXT)

    kms.set_state(key.key_id, "disabled")
    with pytest.raises(KeyAccessDenied):
        await other_process.decrypt(key, wrapped, CONTEXT)
    kms.set_state(key.key_id, "enabled")
    await other_process.decrypt(key, wrapped, CONTEXT)

    await kms.destroy_key(key)
    assert key.key_id in path.read_text()  # the entry remains, its material does not
    with pytest.raises(KeyAccessDenied):
        await other_process.decrypt(key, wrapped, CONTEXT)
    with pytest.raises(ValueError, match="destroyed"):
        kms.set_state(key.key_id, "enabled")
    assert path.stat().st_mode & 0o077 == 0


async def test_unknown_key_is_refused(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "kms.key")
    with pytest.raises(KeyAccessDenied):
        await kms.generate_data_key(KeyRef(provider="local", key_id="local-nope"), CONTEXT)


async def test_a_tenant_key_serves_only_its_owner(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "kms.key")
    key = await kms.create_key(description="t1", owner="t1")
    with pytest.raises(KeyAccessDenied, match="another tenant"):
        await kms.generate_data_key(key, {**CONTEXT, "tenant_id": "t2"})
