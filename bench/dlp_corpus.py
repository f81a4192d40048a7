"""Labelled DLP evaluation sets, and how a detector is scored on them.

* ``generate``: the project's own set, generated offline: seeded Faker values in hand-written
  templates. Each sample is a short business text with the exact character spans of the personal
  data placed in it. About a third of the sentences carry no personal data but do carry
  capitalised words (teams, products, weekdays, places of business), the usual source of false
  positives.
* ``load_public``: a set nobody here wrote: sentences generated from presidio-evaluator's
  templates, list of people and formats (``bench/data/pii_public``, see its NOTICE).

Both are shared by the tests (recall floors per entity type) and ``bench/dlp.py`` (Presidio as
shipped and Bulwark measured on the same texts). ``score`` counts an entity as found only when
it is hidden in full (see there).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EVALUATED = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN")
_SLOT = re.compile(r"\{(name|email|phone|card|iban|ssn)\}")
_SLOT_TYPE = {
    "name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "US_SSN",
}

PII_TEMPLATES = (
    "Please ask {name} to review the contract before Friday.",
    "{name} joined the Finance team in March and reports to {name}.",
    "Meeting notes: {name} presented the Q3 forecast; {name} will follow up.",
    "You can reach {name} at {email} for questions about the audit.",
    "Send the signed copy to {email} and copy {email}.",
    "Customer callback requested on {phone} after 3 pm.",
    "For urgent issues call the on-call engineer at {phone}.",
    "{name}'s mobile number is {phone}; email is {email}.",
    "The refund went to card {card}, charged on Monday.",
    "Card number {card} was declined at the Berlin office.",
    "Please wire the deposit to IBAN {iban} before the end of the month.",
    "Supplier bank details: {iban} (reference INV-2291).",
    "Employee {name}, SSN {ssn}, starts on the first of the month.",
    "The payroll form lists social security number {ssn} for {name}.",
    "Hi {name}, thanks for your message about the Lisbon offsite.",
    "Approved by {name} on behalf of the Procurement Committee.",
    "Dear {name}, your expense claim was approved by {name}.",
    "Contact: {name} <{email}>, phone {phone}.",
    "Invoice 4471 was disputed by {name} from the Acme account.",
    "Escalated to {name} after the Tuesday incident review.",
)
CLEAN_TEMPLATES = (
    "The Quarterly Business Review moved to Thursday afternoon.",
    "Finance approved the Cloud Migration budget for the Platform team.",
    "Please update the Onboarding Checklist in Confluence by Monday.",
    "The Security Council meets every second Wednesday in Building C.",
    "Release 4.2 ships the new Reporting Dashboard and the Export API.",
    "Our Paris and Madrid offices close early on Christmas Eve.",
    "The Procurement Policy requires three quotes above 10,000 euros.",
    "Incident INC-4821 was resolved after the database failover.",
    "Sales Enablement will publish the Pricing Guide next quarter.",
    "Use the Travel Portal to book trains longer than four hours.",
)


@dataclass(frozen=True, slots=True)
class Span:
    entity_type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    spans: tuple[Span, ...]


_AREA_CODES = (212, 303, 312, 404, 415, 512, 617, 646, 702, 206)


def _phone(rng: random.Random) -> str:
    """A dialable-looking number (US, UK or German) in one of the usual spellings."""
    area, mid, last = rng.choice(_AREA_CODES), rng.randint(220, 989), rng.randint(1000, 9999)
    return rng.choice(
        [
            f"({area}) {mid}-{last}",
            f"{area}-{mid}-{last}",
            f"+1 {area} {mid} {last}",
            f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
        ]
    )


def generate(count: int = 400, *, seed: int = 20261129) -> list[Sample]:
    """``count`` samples, each one to three sentences, deterministic for a seed."""
    from faker import Faker

    fake = Faker(["en_US", "en_GB"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    samples: list[Sample] = []
    for _ in range(count):
        sentences = [rng.choice(PII_TEMPLATES)]
        for _ in range(rng.randint(0, 2)):
            sentences.append(rng.choice(CLEAN_TEMPLATES if rng.random() < 0.6 else PII_TEMPLATES))
        rng.shuffle(sentences)
        text, spans = "", []
        for sentence in sentences:
            if text:
                text += " "
            position = 0
            for match in _SLOT.finditer(sentence):
                text += sentence[position : match.start()]
                slot = match.group(1)
                value = {
                    "name": lambda: fake.name(),
                    "email": lambda: fake.email(),
                    "phone": lambda: _phone(rng),
                    "card": lambda: fake.credit_card_number(
                        card_type=rng.choice(["visa16", "mastercard", "amex"])
                    ),
                    "iban": lambda: fake.iban(),
                    "ssn": lambda: fake["en_US"].ssn(),
                }[slot]()
                spans.append(Span(_SLOT_TYPE[slot], len(text), len(text) + len(value)))
                text += value
                position = match.end()
            text += sentence[position:]
        samples.append(Sample(text, tuple(spans)))
    return samples


PUBLIC_SET = Path(__file__).resolve().parent / "data" / "pii_public" / "sentences.json.gz"


def load_public(limit: int | None = None) -> list[Sample]:
    """The public set's sentences (all 1,500, or the first ``limit``), spans as labelled."""
    data = json.loads(gzip.decompress(PUBLIC_SET.read_bytes()))
    return [
        Sample(s["text"], tuple(Span(x["type"], x["start"], x["end"]) for x in s["spans"]))
        for s in data["sentences"][:limit]
    ]


def labelled_types(samples: Sequence[Sample]) -> tuple[str, ...]:
    return tuple(sorted({span.entity_type for sample in samples for span in sample.spans}))


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float
    support: int


# Types whose findings hide each other's text: an address's city found as a LOCATION is hidden
# as well as one found as part of the STREET_ADDRESS (Presidio has no address type at all).
COVERED_BY = {
    "STREET_ADDRESS": frozenset({"STREET_ADDRESS", "LOCATION"}),
    "LOCATION": frozenset({"LOCATION", "STREET_ADDRESS"}),
}
# Titles around a name (Faker writes "Dr Joyce Hayward", "Sean Tran DDS"): not the personal data
# itself, so a name is found in full without them.
_HONORIFICS_TEXT = "mr mrs ms miss mx dr prof sir dds md phd jr sr ii iii iv v dvm"
HONORIFICS = frozenset(_HONORIFICS_TEXT.split())
_TOKEN = re.compile(r"[^\W_]+")


def _must_hide(text: str, span: Span) -> list[int]:
    """The characters of a labelled span that must be hidden: its letters and digits, without
    the titles at either end of a name."""
    words = [m for m in _TOKEN.finditer(text, span.start, span.end)]
    if span.entity_type == "PERSON":
        while words and words[0].group(0).lower() in HONORIFICS:
            words.pop(0)
        while words and words[-1].group(0).lower() in HONORIFICS:
            words.pop()
    return [i for m in words for i in range(m.start(), m.end())]


def score(
    samples: Sequence[Sample],
    predicted: Sequence[Sequence[tuple[str, int, int]]],
    types: Sequence[str] = EVALUATED,
) -> dict[str, Score]:
    """Precision and recall per entity type.

    Recall: a labelled entity counts as found only when every letter and digit of it is inside
    findings of its type (or of a type that hides it too, ``COVERED_BY``): half a name, a phone
    number without its extension, a card's first twelve digits are leaks. Precision: a finding
    is correct when it overlaps a labelled entity it may cover."""
    result: dict[str, Score] = {}
    for entity_type in types:
        covering = COVERED_BY.get(entity_type, frozenset({entity_type}))
        found_in_full = support = correct = found = 0
        for sample, predictions in zip(samples, predicted, strict=True):
            hidden = {
                i for kind, start, end in predictions if kind in covering for i in range(start, end)
            }
            for span in sample.spans:
                if span.entity_type == entity_type:
                    support += 1
                    found_in_full += all(i in hidden for i in _must_hide(sample.text, span))
            for kind, start, end in predictions:
                if kind != entity_type:
                    continue
                found += 1
                correct += any(
                    kind in COVERED_BY.get(span.entity_type, frozenset({span.entity_type}))
                    and start < span.end
                    and span.start < end
                    for span in sample.spans
                )
        result[entity_type] = Score(
            precision=round(correct / found, 3) if found else 1.0,
            recall=round(found_in_full / support, 3) if support else 1.0,
            support=support,
        )
    return result
