"""What issue #24 found leaking, each as a sentence a user would send: after the scan, nothing of
the value is left in the text. And recall on the public set (presidio-evaluator's templates)."""

from __future__ import annotations

import uuid

import pytest

from bench.dlp_corpus import labelled_types, load_public, score
from dlp.adapters.names import ner_segments
from dlp.adapters.presidio import PresidioDetector
from dlp.adapters.recognizers import card_issuer_known, luhn_valid
from dlp.policies import DEFAULT_POLICY, Action, DlpPolicy, EntityRule, validate
from dlp.ports import DetectionRequest
from dlp.services import DlpEngine, DlpScanner


def redacting(*types: str) -> DlpPolicy:
    return DlpPolicy(
        entities=tuple(
            EntityRule(t, 0.5 if t != "PHONE_NUMBER" else 0.35, Action.REDACT) for t in types
        )
    )


async def redacted(engine: DlpEngine, policy: DlpPolicy, text: str) -> str:
    scan, _ = await DlpScanner(engine, policy, uuid.uuid4()).inbound(text)
    return scan.text


@pytest.mark.parametrize(
    "card",
    [
        "2221 0012 3412 3450",  # Mastercard 2-series (2221-2720)
        "2720991234567894",
        "4539578763621486123",  # Visa, 19 digits
        "6759649826438453",  # Maestro
        "630427929280",  # Maestro, 12 digits
        "2200123456789019",  # Mir
        "213171239915293",  # JCB, 15 digits
        "3056930009020004",  # Diners, 16 digits
    ],
)
async def test_cards_of_every_length_and_range_are_redacted(engine: DlpEngine, card: str) -> None:
    digits = card.replace(" ", "")
    assert luhn_valid(digits) and card_issuer_known(digits)
    text = await redacted(engine, DEFAULT_POLICY, f"Please charge my card {card} today.")
    assert text == "Please charge my card <CREDIT_CARD> today."


@pytest.mark.parametrize(
    "number",
    [
        "2221 0012 3412 3451",  # fails the Luhn check
        "9021 0012 3412 3456",  # no issuer starts with 9
        "37144963539843",  # an Amex prefix with 14 digits: Amex numbers have 15
    ],
)
async def test_digit_runs_that_are_not_cards_are_left_alone(engine: DlpEngine, number: str) -> None:
    text = f"Reference {number} was closed."
    assert await redacted(engine, redacting("CREDIT_CARD"), text) == text


@pytest.mark.parametrize(
    "phone",
    [
        "358-528-4445x6404",
        "(243)177-1084 x4468",
        "685.398.9432 ext. 826",
        "+41 (0)29 464 83 43",
        "+41 44 668 18 00",
        "+44 20 7946 0958",
        "07700 900123",
        "001-216-068-3465",
    ],
)
async def test_phone_numbers_with_extensions_and_international_forms_are_redacted_whole(
    engine: DlpEngine, phone: str
) -> None:
    text = await redacted(
        engine, redacting("PHONE_NUMBER"), f"Can someone call me on {phone}? Thanks."
    )
    assert text == "Can someone call me on <PHONE_NUMBER>? Thanks."


async def test_a_bare_fax_number_is_a_phone_number_but_a_bare_reference_is_not(
    engine: DlpEngine,
) -> None:
    policy = redacting("PHONE_NUMBER")
    assert await redacted(engine, policy, "Fax: 1322342321") == "Fax: <PHONE_NUMBER>"
    # Ten digits no region dials and no word saying "phone": a reference, left alone.
    assert await redacted(engine, policy, "Order 0000012345 shipped.") == (
        "Order 0000012345 shipped."
    )


@pytest.mark.parametrize(
    ("sentence", "name"),
    [
        ("My name is Vitór", "Vitór"),
        ("Sometimes people call me Růžena", "Růžena"),
        ("Hi Aislinn, I'm contacting you about a wire transfer.", "Aislinn"),
        ("I would like to remove my kid Lucas from the will.", "Lucas"),
        ("Lauren Whitefoord hired her; Lauren left in May.", "Lauren"),
    ],
)
async def test_a_lone_first_name_in_a_short_sentence_is_redacted(
    engine: DlpEngine, sentence: str, name: str
) -> None:
    text = await redacted(engine, DEFAULT_POLICY, sentence)
    assert name not in text and "<PERSON_1>" in text


@pytest.mark.parametrize(
    "name", ["Juliane S Amsel", "Ulrich S. Bieber", "Johanne M. Brandt", "Ikkou N Izumi"]
)
async def test_a_name_with_a_middle_initial_is_redacted_in_full(
    engine: DlpEngine, name: str
) -> None:
    text = await redacted(
        engine, DEFAULT_POLICY, f"Will my account stay active? It's under my partner's name {name}"
    )
    assert text.endswith("It's under my partner's name <PERSON_1>"), text


def test_names_in_any_script_and_initials_reach_the_model() -> None:
    segments = [s for _, s in ner_segments("the letter from Søren J. Čerkez arrived", context=0)]
    assert segments == ["Søren J. Čerkez"]
    # Typed all in lower case: no cue at all, so the model reads all of it.
    assert ner_segments("ask madeline macmahon") == [(0, "ask madeline macmahon")]


@pytest.mark.parametrize(
    "address",
    [
        "742 Evergreen Terrace",
        "083 Crosby Plaza Apt. 533, Farleytown, MT 73436",
        "690 Sanchez Union Suite 625\nChristopherhaven, CT 21957",
        "Via Pisanelli 104",
        "Mattenstrasse 108",
        "P.O. Box 255",
        "PSC 1241, Box 5868\nAPO AP 25384",
    ],
)
async def test_street_addresses_are_redacted(engine: DlpEngine, address: str) -> None:
    text = await redacted(
        engine, redacting("STREET_ADDRESS"), f"Please send it to {address} by then."
    )
    assert text == "Please send it to <STREET_ADDRESS> by then."


async def test_date_time_is_a_policy_type_and_is_applied(
    engine: DlpEngine, detector: PresidioDetector
) -> None:
    policy = validate(redacting("DATE_TIME"), detector.supported_entities)
    for value in ("3/29/1982", "1974-10-10 05:29:52.571465", "March 3, 2020", "Monday"):
        text = await redacted(engine, policy, f"It's been like that since {value}.")
        assert text == "It's been like that since <DATE_TIME>.", text
    text = await redacted(engine, policy, "The orchestra was founded in 1987.")
    assert text == "The orchestra was founded in <DATE_TIME>."
    # Not asked for, not touched: the default policy leaves dates alone.
    assert await redacted(engine, DEFAULT_POLICY, "Since 3/29/1982.") == "Since 3/29/1982."


# Measured on all 1,500 public sentences (bench/data/pii_public), full-span recall, Bulwark at
# the default policy's thresholds asking for every labelled type it offers, beside Presidio as
# shipped with the same model (``python -m bench.dlp``):
#   PERSON 0.713 (shipped 0.661) | LOCATION 0.505 (0.411) | PHONE 0.874 (0.613) | CARD 0.904
#   (0.704) | DATE_TIME 1.0 (0.882) | STREET_ADDRESS 0.481 (0.003) | EMAIL, IBAN, IP, SSN 1.0
#   (1.0) | URL 0.974 (0.974) | US_DRIVER_LICENSE 0.4 (0.4) | ORGANIZATION 0.765 (0.646) | NRP
#   0.667 (0.667).
# Each floor sits at or above shipped's figure: a regression below Presidio as shipped fails.
PUBLIC_RECALL_FLOOR = {
    "PERSON": 0.69,
    "LOCATION": 0.49,
    "PHONE_NUMBER": 0.85,
    "CREDIT_CARD": 0.89,
    "DATE_TIME": 0.97,
    "STREET_ADDRESS": 0.46,
    "EMAIL_ADDRESS": 1.0,
    "IBAN_CODE": 1.0,
    "IP_ADDRESS": 1.0,
    "US_SSN": 1.0,
    "URL": 0.974,
    "US_DRIVER_LICENSE": 0.4,
    "ORGANIZATION": 0.74,
    "NRP": 0.667,
}


def test_public_set_recall_per_type_holds_at_least_presidio_as_shipped(
    detector: PresidioDetector,
) -> None:
    samples = load_public()
    offered = [t for t in labelled_types(samples) if t in detector.supported_entities]
    assert sorted(offered) == sorted(PUBLIC_RECALL_FLOOR)
    thresholds = {rule.entity_type: rule.threshold for rule in DEFAULT_POLICY.entities}
    found = detector.detect([s.text for s in samples], DetectionRequest(frozenset(offered)))
    predicted = [
        [
            (f.entity_type, f.start, f.end)
            for f in hits
            if f.score >= thresholds.get(f.entity_type, 0.5)
        ]
        for hits in found
    ]
    scores = score(samples, predicted, offered)
    report = {k: (v.precision, v.recall, v.support) for k, v in scores.items()}
    print("public set precision/recall/support per type:", report)
    for entity_type, floor in PUBLIC_RECALL_FLOOR.items():
        assert scores[entity_type].recall >= floor, (entity_type, report)
