from __future__ import annotations

import uuid

from auth import apikeys


def test_format_and_parse_round_trip() -> None:
    tenant_id, key_id, secret = uuid.uuid4(), uuid.uuid4(), apikeys.new_secret()
    raw = apikeys.format_key(tenant_id, key_id, secret)
    assert raw.startswith("bwk_")
    assert apikeys.parse_key(raw) == apikeys.ParsedKey(tenant_id, key_id, secret)


def test_parse_rejects_malformed_keys() -> None:
    good = apikeys.format_key(uuid.uuid4(), uuid.uuid4(), apikeys.new_secret())
    for bad in (
        "",
        "bwk_",
        good[:-1],
        good + "x",
        good.replace("bwk_", "bwx_"),
        good.upper(),
        good + "\n",
        " " + good,
    ):
        assert apikeys.parse_key(bad) is None, bad


def test_hash_is_keyed_and_verification_is_exact() -> None:
    secret = apikeys.new_secret()
    stored = apikeys.hash_secret(secret, "pepper-1")
    assert secret not in stored
    assert apikeys.verify_secret(secret, stored, "pepper-1")
    assert not apikeys.verify_secret(secret, stored, "pepper-2")
    assert not apikeys.verify_secret(secret[:-1] + "x", stored, "pepper-1")
