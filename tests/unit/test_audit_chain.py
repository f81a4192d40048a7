"""The audit chain's pure parts: hashes (RFC 8785, and the legacy encoding of chains written
before), the verifier, pseudonyms, detail rules and the checkpoint key."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit import pseudonyms
from audit.canon import CanonError
from audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainEntry,
    ChainVerifier,
    check_detail,
    check_identifier,
    checkpoint_document,
    format_time,
    seal,
)
from audit.signing import CheckpointSigner
from kernel.settings import Settings
from tests import outsider

TENANT = str(uuid.UUID(int=7))


def unsealed(sequence: int, prev: str, tenant: str = TENANT) -> ChainEntry:
    return ChainEntry(
        id=str(uuid.UUID(int=sequence)),
        tenant_id=tenant,
        sequence=sequence,
        occurred_at=f"2026-11-29T10:00:{sequence:02d}.000000Z",
        actor="ps_" + "a" * 32,
        action="user.created",
        resource_type="user",
        resource_id=str(uuid.UUID(int=100 + sequence)),
        outcome="success",
        request_id=None,
        detail={"roles": ["member"], "count": sequence},
        prev_hash=prev,
    )


def make_chain(length: int, tenant: str = TENANT, *, legacy: int = 0) -> list[ChainEntry]:
    """``length`` events; the first ``legacy`` of them as Bulwark wrote them before RFC 8785."""
    entries: list[ChainEntry] = []
    prev = GENESIS_HASH
    for sequence in range(1, length + 1):
        entry = unsealed(sequence, prev, tenant)
        entry = legacy_seal(entry) if sequence <= legacy else seal(entry)
        entries.append(entry)
        prev = entry.hash
    return entries


def legacy_seal(entry: ChainEntry) -> ChainEntry:
    """``entry`` sealed exactly as the code before RFC 8785 did: no ``canon``, and the SHA-256 of
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
    of its twelve fields."""
    fields = {name: getattr(entry, name) for name in HASHED_FIELDS if name != "canon"}
    assert len(fields) == 12
    encoded = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    return dataclasses.replace(entry, canon=None, hash=hashlib.sha256(encoded).hexdigest())


def run(entries: list[ChainEntry], head: tuple[int, str] | None) -> tuple[bool, int, int | None]:
    verifier = ChainVerifier(TENANT)
    for entry in entries:
        verifier.feed(entry)
    result = verifier.finish(*(head or (None, None)))
    return result.ok, result.events_checked, result.first_bad_sequence


def head_of(entries: list[ChainEntry]) -> tuple[int, str]:
    return entries[-1].sequence, entries[-1].hash


# --- canonical encoding and hashes ----------------------------------------------------------------


def test_times_have_one_spelling() -> None:
    moment = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-11-29T10:00:00.000000Z"
    assert format_time(moment.astimezone(UTC)) == format_time(moment)
    with pytest.raises(ValueError, match="UTC-aware"):
        format_time(datetime(2026, 11, 29))


def test_hash_is_sha256_of_the_rfc8785_fields_including_prev_hash_and_canon() -> None:
    entry = make_chain(1)[0]
    fields = {k: v for k, v in dataclasses.asdict(entry).items() if k != "hash"}
    assert fields["canon"] == 2
    assert entry.hash == hashlib.sha256(rfc8785.dumps(fields)).hexdigest()
    assert entry.prev_hash == "0" * 64
    relinked = dataclasses.replace(entry, prev_hash="f" * 64)
    assert relinked.compute_hash() != entry.hash
    assert list(entry.export()) == [*fields, "hash"]
    assert outsider.event_hash(entry.export()) == entry.hash


def test_a_legacy_event_exports_without_canon_and_keeps_its_hash() -> None:
    entry = make_chain(1, legacy=1)[0]
    assert entry.canon is None and "canon" not in entry.export()
    assert entry.compute_hash() == entry.hash
    # Its fields are the same; only the recorded encoding (and so the hashed object) differs.
    assert seal(dataclasses.replace(entry, canon=2)).hash != entry.hash
    assert outsider.event_hash(entry.export()) == entry.hash


# --- the verifier ---------------------------------------------------------------------------------


def test_an_intact_chain_verifies() -> None:
    chain = make_chain(5)
    assert run(chain, head_of(chain)) == (True, 5, None)
    assert run([], None) == (True, 0, None)  # a tenant that never had an event
    assert run([], (0, GENESIS_HASH)) == (True, 0, None)


@pytest.mark.parametrize("legacy", [5, 3, 1], ids=["all-legacy", "mixed", "first-legacy"])
def test_chains_written_before_rfc8785_still_verify_and_continue(legacy: int) -> None:
    chain = make_chain(5, legacy=legacy)
    assert [e.canon for e in chain] == [None] * legacy + [2] * (5 - legacy)
    assert run(chain, head_of(chain)) == (True, 5, None)
    assert outsider.chain_is_intact([e.export() for e in chain])


def test_tampering_is_found_in_legacy_and_rfc8785_events_alike() -> None:
    chain = make_chain(6, legacy=3)
    for index in (1, 4):  # a legacy event, then an RFC 8785 one
        changed = dataclasses.replace(chain[index], detail={"roles": ["tenant_admin"]})
        tampered = [*chain[:index], changed, *chain[index + 1 :]]
        assert run(tampered, head_of(chain)) == (False, 6, index + 1)
        assert not outsider.chain_is_intact([e.export() for e in tampered])


@pytest.mark.parametrize(
    ("index", "canon"),
    [(1, 2), (4, None), (4, 3), (4, True)],
    ids=["legacy-claims-rfc8785", "rfc8785-claims-legacy", "unknown-version", "bool-version"],
)
def test_a_changed_encoding_version_is_found_without_an_error(index: int, canon: object) -> None:
    chain = make_chain(6, legacy=3)
    changed = dataclasses.replace(chain[index], canon=canon)  # type: ignore[arg-type]
    tampered = [*chain[:index], changed, *chain[index + 1 :]]
    assert run(tampered, head_of(chain)) == (False, 6, index + 1)


def test_a_legacy_event_rfc8785_cannot_encode_still_verifies() -> None:
    # Before RFC 8785 the detail rules let integers beyond 2**53 through.
    big = dataclasses.replace(unsealed(1, GENESIS_HASH), detail={"bytes": 2**53 + 1})
    old = legacy_seal(big)
    assert run([old], head_of([old])) == (True, 1, None)
    with pytest.raises(CanonError):
        seal(big)  # never written so again
    with pytest.raises(ValueError, match="2\\*\\*53"):
        check_detail({"bytes": 2**53})
    assert check_detail({"bytes": 2**53 - 1, "big": str(2**53)}) == {
        "bytes": 2**53 - 1,
        "big": str(2**53),
    }


def test_a_changed_field_is_found_at_its_event() -> None:
    chain = make_chain(5)
    for field, value in (
        ("action", "user.createX"),
        ("detail", {"roles": ["tenant_admin"], "count": 3}),
        ("actor", "ps_" + "b" * 32),
        ("occurred_at", "2026-11-29T10:00:03.000001Z"),
    ):
        tampered = [*chain[:2], dataclasses.replace(chain[2], **{field: value}), *chain[3:]]
        assert run(tampered, head_of(chain)) == (False, 5, 3), field


def test_a_rehashed_event_breaks_the_next_link() -> None:
    chain = make_chain(5)
    forged = seal(dataclasses.replace(chain[2], action="group.created"))
    assert run([*chain[:2], forged, *chain[3:]], head_of(chain)) == (False, 5, 4)


def test_a_deleted_event_or_tail_is_found() -> None:
    chain = make_chain(5)
    assert run([*chain[:2], *chain[3:]], head_of(chain)) == (False, 4, 3)
    assert run(chain[:4], head_of(chain)) == (False, 4, 5)  # tail gone, head remembers it
    assert run(chain[:4], head_of(chain[:4])) == (True, 4, None)
    assert run(chain, head_of(chain[:4])) == (False, 5, 5)  # events beyond the head
    assert run(chain, (5, "e" * 64)) == (False, 5, 5)  # head hash is not the last event
    assert run(chain, None) == (False, 5, 1)  # events without a head
    assert run([], head_of(chain)) == (False, 0, 1)  # head without events


def test_the_chain_starts_at_genesis_and_stays_in_its_tenant() -> None:
    chain = make_chain(3)
    not_genesis = seal(dataclasses.replace(chain[0], prev_hash="1" * 64))
    assert run([not_genesis], head_of([not_genesis])) == (False, 1, 1)
    other = make_chain(3, tenant=str(uuid.UUID(int=8)))
    assert run(other, head_of(other)) == (False, 3, 1)
    assert run(chain[1:], head_of(chain)) == (False, 2, 1)  # starts at 2


# --- detail: ids, counts, codes and hashes only ---------------------------------------------------


def test_detail_accepts_ids_counts_codes_and_hashes() -> None:
    user = uuid.uuid4()
    assert check_detail(
        {"user_id": user, "count": 3, "ok": True, "codes": ["a.b", "c"], "sha": "ab" * 32}
    ) == {"user_id": str(user), "count": 3, "ok": True, "codes": ["a.b", "c"], "sha": "ab" * 32}
    assert check_detail({"nested": {"inner": [1, 2]}}) == {"nested": {"inner": [1, 2]}}
    assert check_identifier(str(user)) == str(user)


@pytest.mark.parametrize(
    "detail",
    [
        {"email": "alice@example.com"},
        {"name": "Alice Example"},
        {"prompt": "what is our revenue?"},
        {"score": 0.5},
        {"Bad-Key": 1},
        {"long": "x" * 129},
        {"deep": {"a": {"b": {"c": 1}}}},
        {"many": list(range(101))},
        {"raw": b"bytes"},
    ],
)
def test_detail_refuses_plaintext_and_unstable_values(detail: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="audit detail"):
        check_detail(detail)


def test_identifiers_refuse_plaintext() -> None:
    for bad in ("", "a b", "x@y.z", "é"):
        with pytest.raises(ValueError, match="resource ids"):
            check_identifier(bad)


# --- pseudonyms -----------------------------------------------------------------------------------


def test_pseudonym_is_hmac_of_the_subject_under_its_own_secret() -> None:
    secret = bytes(range(32))
    subject = pseudonyms.user_subject(uuid.UUID(int=1))
    assert subject == "user:00000000-0000-0000-0000-000000000001"
    expected = hmac.new(secret, subject.encode(), hashlib.sha256).hexdigest()[:32]
    assert pseudonyms.pseudonym(secret, subject) == "ps_" + expected
    assert pseudonyms.PSEUDONYM.match(pseudonyms.pseudonym(secret, subject))
    assert pseudonyms.pseudonym(pseudonyms.new_secret(), subject) != "ps_" + expected
    assert len(pseudonyms.new_secret()) == 32


def test_subjects_are_normalised() -> None:
    user = uuid.uuid4()
    assert pseudonyms.normalize_subject(f"user:{str(user).upper()}") == f"user:{user}"
    assert pseudonyms.normalize_subject(f"user:{user.hex}") == f"user:{user}"
    assert pseudonyms.normalize_subject("operator") == "operator"
    assert pseudonyms.normalize_subject("system") == "system"
    assert pseudonyms.normalize_subject("scim") == pseudonyms.SCIM_SUBJECT == "scim"
    for bad in ("user:nope", "admin@example.com", "ps_abc", "user:" + "g" * 32):
        assert pseudonyms.normalize_subject(bad) is None


# --- checkpoint payload and the signing key ------------------------------------------------------


def test_a_checkpoint_signs_the_rfc8785_json_of_six_fields_and_canon() -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    document = checkpoint_document(
        tenant_id=TENANT,
        sequence=3,
        head_hash="ab" * 32,
        signed_at="2026-11-29T10:00:00.000000Z",
        key_id=signer.key_id,
        algorithm="Ed25519",
    )
    assert document == {
        "algorithm": "Ed25519",
        "canon": 2,
        "head_hash": "ab" * 32,
        "key_id": signer.key_id,
        "sequence": 3,
        "signed_at": "2026-11-29T10:00:00.000000Z",
        "tenant_id": TENANT,
    }
    payload, signature = signer.sign(document)
    assert payload == rfc8785.dumps(document)
    key = outsider.public_key(signer.public_key_b64)
    outsider.verify_checkpoint({**document, "signature": signature}, key)
    with pytest.raises(InvalidSignature):
        outsider.verify_checkpoint({**document, "sequence": 4, "signature": signature}, key)
    unversioned = {k: v for k, v in document.items() if k != "canon"}
    with pytest.raises(InvalidSignature):  # the version is signed too
        outsider.verify_checkpoint({**unversioned, "signature": signature}, key)


def test_a_checkpoint_signed_before_rfc8785_still_verifies() -> None:
    private = Ed25519PrivateKey.generate()
    signer = CheckpointSigner(private)
    old = {
        "algorithm": "Ed25519",
        "head_hash": "ab" * 32,
        "key_id": signer.key_id,
        "sequence": 3,
        "signed_at": "2026-11-29T10:00:00.000000Z",
        "tenant_id": TENANT,
    }
    # Exactly as the code before RFC 8785 signed it.
    payload = json.dumps(
        old, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    signature = base64.b64encode(private.sign(payload)).decode()
    outsider.verify_checkpoint(
        {**old, "signature": signature}, outsider.public_key(signer.public_key_b64)
    )


def test_only_versioned_documents_are_signed() -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    for document in ({"a": 1}, {"a": 1, "canon": 1}, {"a": 1, "canon": 3}):
        with pytest.raises(CanonError):
            signer.sign(document)
    with pytest.raises(CanonError):
        signer.sign({"a": float("nan"), "canon": 2})


def test_signing_key_is_generated_once_outside_production(tmp_path: Path, clean_env: None) -> None:
    settings = Settings(data_dir=tmp_path, environment="test")
    first = CheckpointSigner.from_settings(settings)
    key_file = tmp_path / "audit-signing.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert CheckpointSigner.from_settings(settings).key_id == first.key_id
    assert first.key_id == hashlib.sha256(first.public_key_raw).hexdigest()[:16]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    payload, signature = first.sign({"canon": 2, "x": 1})
    Ed25519PublicKey.from_public_bytes(base64.b64decode(first.public_key_b64)).verify(
        base64.b64decode(signature), payload
    )


def test_signing_key_must_be_configured_in_production(tmp_path: Path, clean_env: None) -> None:
    with pytest.raises(RuntimeError, match="SIGNING_KEY_FILE"):
        CheckpointSigner.from_settings(Settings(data_dir=tmp_path, environment="production"))
    assert not (tmp_path / "audit-signing.pem").exists()

    CheckpointSigner.from_settings(Settings(data_dir=tmp_path / "dev", environment="test"))
    configured = tmp_path / "dev" / "audit-signing.pem"
    signer = CheckpointSigner.from_settings(
        Settings(
            data_dir=tmp_path, environment="production", audit={"signing_key_file": configured}
        )
    )
    assert signer.key_id == CheckpointSigner.from_pem(configured.read_bytes()).key_id

    with pytest.raises(RuntimeError, match="does not exist"):
        CheckpointSigner.from_settings(
            Settings(audit={"signing_key_file": tmp_path / "missing.pem"}, data_dir=tmp_path)
        )
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(RuntimeError, match="Ed25519"):
        CheckpointSigner.from_pem(ec_pem)
