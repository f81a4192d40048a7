"""The DLP engine's ports: what the services need from a detector, nothing vendor-shaped.

``Detector`` finds personal data in texts; ``Rewriter`` replaces spans with precomputed
replacements. ``dlp.adapters.presidio`` implements both over Presidio and spaCy; nothing outside
``dlp.adapters`` imports those libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span: its entity type, character offsets and confidence (0..1)."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class CustomRecognizer:
    """A tenant's own entity type: validated regexes and/or literal deny-list terms."""

    entity_type: str
    patterns: tuple[str, ...] = ()
    deny_list: tuple[str, ...] = ()
    score: float = 0.9


@dataclass(frozen=True, slots=True)
class DetectionRequest:
    """What to look for: built-in entity types, the tenant's own recognizers, and values that are
    never flagged (exact match)."""

    entities: frozenset[str]
    custom: tuple[CustomRecognizer, ...] = ()
    allow_list: tuple[str, ...] = ()
    min_score: float = 0.0


class Detector(Protocol):
    #: Built-in entity types this detector can find.
    supported_entities: frozenset[str]
    #: The subset found by the statistical NER model (the slow path).
    ner_entities: frozenset[str]

    def detect(self, texts: Sequence[str], request: DetectionRequest) -> list[list[Finding]]:
        """Findings per text (blocking; call it off the event loop)."""
        ...

    def compiles(self, pattern: str) -> bool:
        """Does the detector's own regex engine accept this tenant pattern?"""
        ...


class Rewriter(Protocol):
    def rewrite(
        self, text: str, findings: Sequence[Finding], replacements: Mapping[Finding, str]
    ) -> str:
        """``text`` with each finding's span replaced by its replacement (non-overlapping)."""
        ...
