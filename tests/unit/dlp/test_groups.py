"""ORGANIZATION and NRP: opt-in policy types. Redacted when a policy asks for them, untouched
(and never looked for) under the default policy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dlp.adapters.groups import legal_form, organisations_and_groups
from dlp.adapters.presidio import PresidioDetector
from dlp.policies import DEFAULT_POLICY, Action, DlpPolicy, EntityRule, validate
from dlp.services import DlpEngine, DlpScanner


def with_groups(*types: str) -> DlpPolicy:
    """The default policy plus ``types``, redacted in every direction."""
    extra = tuple(EntityRule(t, 0.5, Action.REDACT, Action.REDACT, Action.REDACT) for t in types)
    return DlpPolicy(entities=DEFAULT_POLICY.entities + extra)


async def redacted(engine: DlpEngine, policy: DlpPolicy, text: str) -> str:
    scan, _ = await DlpScanner(engine, policy, uuid.uuid4()).inbound(text)
    return scan.text


def test_organization_and_nrp_are_policy_types_but_not_in_the_default(
    detector: PresidioDetector,
) -> None:
    assert {"ORGANIZATION", "NRP"} <= detector.supported_entities
    assert {"ORGANIZATION", "NRP"} <= detector.ner_entities
    validate(with_groups("ORGANIZATION", "NRP"), detector.supported_entities)
    assert DEFAULT_POLICY.rule("ORGANIZATION") is None and DEFAULT_POLICY.rule("NRP") is None


@pytest.mark.parametrize(
    ("sentence", "with_policy"),
    [
        (
            "Please ask Juliane S Amsel to send the contract to Fevertree Drinks PLC.",
            "Please ask <PERSON_1> to send the contract to <ORGANIZATION>.",
        ),
        (
            "The supplier is Nyrstar NV, and their contact is Robert Walters.",
            "The supplier is <ORGANIZATION>, and their contact is <PERSON_1>.",
        ),
        (
            "I used to work for TOYO TEC CO.LTD. as a mechanic.",
            "I used to work for <ORGANIZATION> as a mechanic.",
        ),
        (
            "The board of Acme Holdings Ltd met the Democrats in Berlin.",
            "The board of <ORGANIZATION> met the <NRP> in Berlin.",
        ),
        (
            "Our new hire is Norwegian, and the team lead is a Buddhist.",
            "Our new hire is <NRP>, and the team lead is a <NRP>.",
        ),
    ],
)
async def test_organisations_and_groups_are_redacted_only_when_the_policy_asks(
    engine: DlpEngine, sentence: str, with_policy: str
) -> None:
    assert await redacted(engine, with_groups("ORGANIZATION", "NRP"), sentence) == with_policy
    untouched = await redacted(engine, DEFAULT_POLICY, sentence)
    assert "<ORGANIZATION>" not in untouched and "<NRP>" not in untouched
    kept = ("Fevertree Drinks PLC", "Nyrstar NV", "TOYO TEC CO.LTD.", "Acme Holdings Ltd")
    for value in (*kept, "Democrats", "Norwegian", "Buddhist"):
        assert (value in sentence) is (value in untouched)


async def test_a_name_stays_a_person_when_organisations_are_asked_for(engine: DlpEngine) -> None:
    """The small model calls "Juliane S Amsel" an organisation; the name logic wins."""
    text = "It's under my partner's name Juliane S Amsel"
    for policy in (DEFAULT_POLICY, with_groups("ORGANIZATION")):
        assert await redacted(engine, policy, text) == "It's under my partner's name <PERSON_1>"


async def test_only_a_policy_with_organisations_or_groups_reads_the_whole_text(
    engine: DlpEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default policy's cost is unchanged: the whole-text pass never runs for it."""
    calls: list[str] = []

    def counting(doc: Any, whole: Any, found: list[Any]) -> tuple[list[Any], list[Any]]:
        calls.append(doc.text)
        return organisations_and_groups(doc, whole, found)

    monkeypatch.setattr("dlp.adapters.presidio.organisations_and_groups", counting)
    text = "Maria Keller of Okta Inc. is Norwegian."
    await redacted(engine, DEFAULT_POLICY, text)
    assert calls == []
    await redacted(engine, with_groups("NRP"), text)
    assert calls == [text]


@pytest.mark.parametrize(
    ("token", "lower_ok", "expected"),
    [
        ("Inc.", False, True),
        ("PLC", False, True),
        ("B.V.", False, True),
        ("CO.LTD", False, True),
        ("plc", True, True),
        ("plc", False, False),  # lower case only after a name the model tagged
        ("SA", False, True),
        ("As", False, False),  # a two-letter form only in capitals
        ("AT", False, False),  # and never one that is an everyday word
        ("Smith", False, False),
    ],
)
def test_legal_forms(token: str, lower_ok: bool, expected: bool) -> None:
    assert legal_form(token, lower_ok=lower_ok) is expected
