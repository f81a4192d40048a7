"""Organisations (ORGANIZATION) and nationality, religious or political groups (NRP): what the
NER model finds reading a whole text, for ``dlp.adapters.presidio`` when a policy asks for either
type (opt-in: neither is in the default policy, and the small model's organisations are often
names and products). Pure token logic over spaCy documents, measured on ``bench/data/pii_public``
(docs/PERFORMANCE.md, "ORGANIZATION and NRP").

* the model's ORG and NORP entities over the whole text, as Presidio as shipped reads them;
* an organisation is completed over the legal form written after it ("HATSUHO SHOUJI" +
  "CO.LTD.", "Mallinckrodt" + "plc", "American Financial Group" + ", Inc."), and a run of
  capitalised words ending in a legal form is an organisation the model did not tag ("Veru
  Inc.", "Mersen SA", "LF Capital Acquisition Corp."): legal forms are cleanco's terms, of
  many countries;
* names and organisations overlap (the model calls "Juliane S Amsel" an ORG; name completion
  grows "Robert Walters" over "PLC"): an organisation with a legal form keeps the words of
  its name, and a person found before it keeps theirs ("Julia Lewis" of "Julia Lewis of
  Iterum Therapeutics plc"); any other organisation or group gives way to a name it overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from dlp.adapters.names import OPENERS, split_at_breaks

# spaCy labels read on the whole text, and the Presidio entity each becomes.
WHOLE_TEXT_LABELS = {"ORG": "ORGANIZATION", "NORP": "NRP"}
# Asked for, these types make NER read the whole text (besides the name windows).
WHOLE_TEXT_ENTITIES = frozenset(WHOLE_TEXT_LABELS.values())
# Where that pass leaves its spans on the document (they may overlap ``doc.ents``).
WHOLE_TEXT_SPANS = "whole_text"
# Short legal-form terms that are also everyday words or abbreviations in English ("AS", "AT",
# "OK", "UK", "EU"): a capitalised run before them is not evidence of a company.
_COMMON_SHORT_TEXT = "as at ad ok uk eu et pp ps pc pt ca ba ma ep ec ee ei sd sp ss ud"
_COMMON_SHORT = frozenset(_COMMON_SHORT_TEXT.split())
_PERSON = ("PERSON", "PER")
# Longest run of capitalised words taken as an organisation's name before its legal form.
MAX_NAME_WORDS = 6


@lru_cache(maxsize=1)
def _legal_terms() -> frozenset[str]:
    """cleanco's one-word legal forms, normalised as cleanco does (case, accents, dots)."""
    from cleanco.clean import prepare_default_terms

    return frozenset(parts[0] for size, parts in prepare_default_terms() if size == 1)


def _normal(text: str) -> str:
    from cleanco.clean import normalized, strip_punct

    return str(strip_punct(normalized(text)))


def legal_form(token: str, *, lower_ok: bool) -> bool:
    """Whether ``token`` is a legal form ("Inc.", "PLC", "B.V.", "GmbH", and glued "CO.LTD"):
    written with a capital unless ``lower_ok``; two-letter forms that are common words only in
    capitals ("SA", not "As")."""
    core = token.strip("'\u2019,")
    if not core or not (lower_ok or core[0].isupper()):
        return False
    terms = _legal_terms()
    parts = [p for p in core.split(".") if p]
    for candidate in {_normal(core), _normal(parts[-1]) if parts else ""}:
        if candidate in terms and (
            len(candidate) > 2 or (candidate not in _COMMON_SHORT and core[:2].isupper())
        ):
            return True
    return False


def _name_word(token: Any) -> bool:
    """A word that can be part of a company's name: capitalised, in capitals, or "&"."""
    text = token.text
    if text == "&":
        return True
    return (
        bool(text)
        and (text[0].isupper() or (text[0].isdigit() and any(c.isalpha() for c in text)))
        and not token.is_space
        and text.lower() not in OPENERS
    )


def _with_legal_form(doc: Any, span: Any) -> Any:
    """``span`` run on over a legal form right after it (", Inc.", "plc", "CO.LTD" "."): the
    model tagged the name, the form says it is a company whatever its case."""
    from spacy.tokens import Span

    end = span.end + (span.end < len(doc) and doc[span.end].text == ",")
    if end == len(doc) or not legal_form(doc[end].text, lower_ok=True):
        return span
    return Span(doc, span.start, _past_forms(doc, end, lower_ok=True), label=span.label_)


def _past_forms(doc: Any, end: int, *, lower_ok: bool) -> int:
    """The end of the legal forms starting at token ``end`` ("Co." "Ltd." "'s"; "CO.LTD" ".")."""
    while end < len(doc) and legal_form(doc[end].text, lower_ok=lower_ok):
        end += 1
    if end < len(doc) and doc[end].text == "." and doc[end - 1].text[-1:].isalpha():
        end += 1
    return end


def _firms_by_form(doc: Any, taken: set[int]) -> list[Any]:
    """Runs of capitalised words on one line ending in a capitalised legal form that is not
    ``taken`` (by an organisation the model found): "Veru Inc.", "LF Capital Acquisition
    Corp.", "Central Garden & Pet Company", "TOYO" + "TEC CO.LTD."."""
    from spacy.tokens import Span

    firms = []
    for i, token in enumerate(doc):
        if i in taken or not legal_form(token.text, lower_ok=False):
            continue
        start = i - 1 if i and doc[i - 1].text == "," else i
        first = start
        while first > 0 and _name_word(doc[first - 1]) and start - first < MAX_NAME_WORDS:
            first -= 1
        if first == start:
            continue  # a legal form alone is not a company
        firms.append(Span(doc, first, _past_forms(doc, i, lower_ok=False), label="ORG"))
    return firms


def _form_at(span: Any) -> int | None:
    """The index of the first legal form in ``span`` after its first word, if any."""
    for token in span[1:]:
        if legal_form(token.text, lower_ok=True):
            return int(token.i)
    return None


def organisations_and_groups(doc: Any, whole: Any, found: list[Any]) -> tuple[list[Any], list[Any]]:
    """The organisations and groups of ``whole`` (the same text as ``doc``, tokenised alike,
    NER run on all of it), as spans of ``doc``, beside ``found`` (the windows' entities, names
    completed): ``found`` less the names a company's name swallowed, and the groups."""
    from spacy.tokens import Span
    from spacy.util import filter_spans

    groups = []
    for ent in whole.ents:
        if ent.label_ in WHOLE_TEXT_LABELS:
            span = doc.char_span(ent.start_char, ent.end_char, label=ent.label_)
            if span is not None:
                groups.extend(split_at_breaks(span))
    groups = [_with_legal_form(doc, g) if g.label_ == "ORG" else g for g in groups]
    taken = {i for g in groups for i in range(g.start, g.end)}
    groups = filter_spans(groups + _firms_by_form(doc, taken))

    people = [s for s in found if s.label_ in _PERSON]
    gone: list[Any] = []
    kept: list[Any] = []
    others: list[Any] = []
    for group in groups:
        form = _form_at(group) if group.label_ == "ORG" else None
        if form is None:
            others.append(group)
            continue
        start = group.start
        for person in people:
            if not (person.start < group.end and group.start < person.end):
                continue
            # The person runs into the legal form, or only name words lie between them:
            # the name is the company's ("Robert Walters PLC", "Mainz Biomed" + "B.V.").
            if person.end > form or all(_name_word(doc[k]) for k in range(person.end, form)):
                gone.append(person)
            else:  # "Julia Lewis of Iterum Therapeutics plc": the person keeps the name
                start = max(start, person.end)
        while group.start < start < form and not _name_word(doc[start]):
            start += 1  # "of"
        if start < form:
            kept.append(Span(doc, start, group.end, label="ORG"))
    found = [s for s in found if not any(s is g for g in gone)]
    people = [p for p in people if not any(p is g for g in gone)]
    return found, kept + [g for g in others if not _overlaps_any(g, people)]


def _overlaps_any(span: Any, others: Sequence[Any]) -> bool:
    return any(span.start < other.end and other.start < span.end for other in others)
