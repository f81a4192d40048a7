"""Where the NER model looks, and how the names it half finds are completed: pure token logic
for ``dlp.adapters.presidio`` (measured on ``bench/data/pii_public``; see that module's docstring
and docs/PERFORMANCE.md, session 10).

* ``ner_segments``: the windows of a text worth running NER on;
* ``complete_names``: PERSON spans completed over the whole document;
* ``split_at_breaks``: no entity runs across a line break.
"""

from __future__ import annotations

import re
from typing import Any

# NER sees only windows around name candidates (see ``ner_segments``).
_WORD = re.compile(r"\S+")
NER_CONTEXT_WORDS: int | tuple[int, int] = (1, 0)
# Runs of fewer candidates than this get the context words ("kid Lucas", "the Cloud Migration").
SHORT_RUN = 2
# Punctuation around a word that says nothing about it being a name.
_EDGE = "\"'()[]<>{},.;:!?*/\\|\u00ab\u00bb\u201c\u201d\u2018\u2019\u2013\u2014-"
_OPENERS_TEXT = """
    a an the this that these those it its i we you he she they our your my please if when while
    for from to in on at by with and but or so as after before then there here what which who
    whom whose why how where dear hi hello thanks thank note see call send email contact update
    review confirm total is are was were be do does did can could should would will shall may
    might must all any each every some no not yes ok okay
"""
_CALENDAR_TEXT = """
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december today tomorrow yesterday
"""
OPENERS = frozenset(_OPENERS_TEXT.split())
# Labels of the model kept only until names are completed: it calls many names an ORG.
NAME_LIKE = frozenset({"ORG", "NORP"})
_CALENDAR = frozenset(_CALENDAR_TEXT.split())
_YEAR = re.compile(r"(?:1[5-9]|20)[0-9]{2}s?")


def _is_candidate(word: str, *, dates: bool) -> bool:
    """A word NER should look at: capitalised (any script: "Søren", "Čerkez", "McDonald"), an
    initial ("J", "J."), a word in capitals of three letters or more ("ORLÉANS"), and with
    ``dates`` a year or a calendar word. Common sentence openers are not candidates."""
    core = word.strip(_EDGE)
    if core.endswith(("'s", "\u2019s")):
        core = core[:-2]
    if not core:
        return False
    lower = core.lower()
    if dates and (lower in _CALENDAR or _YEAR.fullmatch(core)):
        return True
    if not core[0].isupper() or lower in OPENERS or lower in _CALENDAR:
        return False
    if len(core) == 1:
        return True
    if any(c.islower() for c in core[1:]):
        return True
    return len(core) >= 3 and core.isalpha()


def _plain(word: str) -> bool:
    core = word.strip(_EDGE)
    return bool(core) and all(c.isalpha() or c in "'\u2019-" for c in core)


def ner_segments(
    text: str, *, context: int | tuple[int, int] = NER_CONTEXT_WORDS, dates: bool = False
) -> list[tuple[int, str]]:
    """The windows of ``text`` worth running NER on, with their offsets: runs of name candidates
    (``_is_candidate``; "Dr Maureen Haynes" is one run), and around a candidate that stands
    alone ``context`` words (before, after) too: the model cannot tell "Lucas" from a word but
    can tell "kid Lucas". Overlapping or touching windows merge. Text without a candidate never
    reaches the model; text without a capital letter (typed all in lower case) gives no cue at
    all, and is one window."""
    if not any(c.isupper() for c in text):
        stripped = text.strip()
        return [(text.index(stripped), stripped)] if stripped else []
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    runs: list[list[int]] = []
    for index, (_, _, word) in enumerate(words):
        if _is_candidate(word, dates=dates):
            if runs and runs[-1][1] == index - 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
    before, after = (context, context) if isinstance(context, int) else context
    windows: list[list[int]] = []
    for first, last in runs:
        low, high = first, last
        if last - first < SHORT_RUN:
            low, high = max(first - before, 0), min(last + after, len(words) - 1)
            # Context is words: an e-mail address or a number beside a name only misleads the
            # model ("Jonathan Pierce jp@example.com" reads as an organisation).
            while low < first and not _plain(words[low][2]):
                low += 1
            while high > last and not _plain(words[high][2]):
                high -= 1
        if windows and low <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    return [(words[lo][0], text[words[lo][0] : words[hi][1]]) for lo, hi in windows]


# Words after which a capitalised word is a name: titles, greetings, and "name is"-style cues.
_TITLES_TEXT = "mr mrs ms miss mx dr prof sir madam dame lady lord"
_GREETINGS_TEXT = "dear hi hello hey"
# "my kid Lucas", "our colleague Priya": a person named by their relation to the writer.
_RELATIONS_TEXT = """
    kid son daughter child wife husband partner spouse brother sister mother father mum mom dad
    friend colleague boss manager uncle aunt cousin nephew niece grandson granddaughter
"""
_TITLES = frozenset(_TITLES_TEXT.split())
_GREETINGS = frozenset(_GREETINGS_TEXT.split())
_RELATIONS = frozenset(_RELATIONS_TEXT.split())
_CUE_PHRASES = (("name", "is"), ("name", ":"), ("call", "me"), ("calls", "me"), ("named",))


def _name_part(text: str) -> bool:
    """A token that can continue a name: a capitalised word (any script) or an initial."""
    core = text.rstrip(".")
    return (
        bool(core)
        and core[0].isupper()
        and (len(core) == 1 or any(c.islower() for c in core[1:]))
        and core.lower() not in OPENERS
        and core.lower() not in _CALENDAR
    )


def split_at_breaks(span: Any) -> list[Any]:
    """An entity the model ran across a line break ("Noah Bruce\n\nMaxillofacial") is one
    entity per line: whitespace tokens are never part of one."""
    if not any(c.isspace() and c != " " for c in span.text) and "  " not in span.text:
        return [span]
    parts, start = [], None
    for token in span:
        if token.is_space:
            if start is not None:
                parts.append(span.doc[start : token.i])
            start = None
        elif start is None:
            start = token.i
    if start is not None:
        parts.append(span.doc[start : span.end])
    for part in parts:
        part.label_ = span.label_
    return parts


def _cued(texts: list[str], i: int) -> bool:
    """Whether the words before token ``i`` announce a person: a title, a greeting, a relation
    or a "my name is" cue."""
    before = texts[i - 1].lower().rstrip(".") if i else ""
    return (
        before in _TITLES
        or before in _GREETINGS
        or before in _RELATIONS
        or (before,) in _CUE_PHRASES
        or (i >= 2 and (texts[i - 2].lower().rstrip("."), before) in _CUE_PHRASES)
    )


def _initial_inside(texts: list[str], start: int, end: int) -> bool:
    """Capitalised word, initial, capitalised word: the shape of "Juliane S Amsel"."""
    words = texts[start:end]
    return len(words) == 3 and (
        _name_part(words[0])
        and len(words[0]) > 1
        and len(words[1].rstrip(".")) == 1
        and words[1][0].isupper()
        and _name_part(words[2])
        and len(words[2]) > 1
    )


def complete_names(doc: Any, spans: list[Any]) -> list[Any]:
    """PERSON spans the small model only half finds, completed on the whole document:

    * a name found runs on over the capitalised words and initials around it ("Fabio" + "C"
      + "Santos", "Mr" + "Neil Humphreys"): a half-redacted name still names someone;
    * a capitalised word after a title, a greeting or a "my name is" cue is a name ("Hi
      Aislinn,", "ms. Dominik", "calls me Petr");
    * every other occurrence of a word of a name found is that name too ("Troy had given
      Troy ..."; "Lauren ... the assistant to Lauren Whitefoord").

    Spans of other labels are kept, and no name grows into them."""
    from spacy.tokens import Span

    texts = [token.text for token in doc]
    # Name parts start with a capital: the cheap test first, on every token.
    part = {i for i, text in enumerate(texts) if text[:1].isupper() and _name_part(text)}
    taken = [False] * len(texts)
    people: list[tuple[int, int]] = []
    others = []
    for span in spans:
        if span.label_ in ("PERSON", "PER") or _initial_inside(texts, span.start, span.end):
            # The model calls "Juliane S Amsel" an ORG: with an initial inside, it is a name.
            people.append((span.start, span.end))
        elif span.end - span.start == 1 and _cued(texts, span.start):
            # "my kid Lucas" tagged as a place: the cue says a person.
            people.append((span.start, span.end))
        elif span.label_ in NAME_LIKE:
            continue  # never reported: it neither blocks a name nor stays
        else:
            others.append(span)
            taken[span.start : span.end] = [True] * (span.end - span.start)

    def grow(start: int, end: int) -> tuple[int, int]:
        while start > 0 and not taken[start - 1] and start - 1 in part:
            start -= 1
        while end < len(texts) and not taken[end] and end in part:
            end += 1
        taken[start:end] = [True] * (end - start)
        return start, end

    people = [grow(start, end) for start, end in people]
    for i in sorted(part):
        if taken[i] or len(texts[i].rstrip(".")) < 2:
            continue
        # Unlabelled, only an initial without a full stop: "Building C. Use ..." is two
        # sentences.
        if _cued(texts, i) or (
            _initial_inside(texts, i, min(i + 3, len(texts))) and not texts[i + 1].endswith(".")
        ):
            people.append(grow(i, i + 1))
    known = {
        texts[j]
        for start, end in people
        for j in range(start, end)
        if len(texts[j]) > 1 and texts[j].lower().rstrip(".") not in _TITLES
    }
    for i, text in enumerate(texts):
        if not taken[i] and text in known:
            people.append(grow(i, i + 1))
    return others + [Span(doc, start, end, label="PERSON") for start, end in people]
