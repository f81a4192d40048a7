"""Groundedness: is each sentence of an answer supported by the source it cites?

The answer cites sources as ``[n]``; a marker written after a sentence's final punctuation
("... a night. [1]") belongs to that sentence. A sentence that states something (a *factual*
sentence: not a greeting, a hedge or "the documents do not say") is supported only when

1. it cites at least one source the asker was given;
2. every *claim token* in it occurs in the text it cites — each number (``2,000`` = ``2000``;
   number words from two to ninety count as their digits), percentage, date part and named entity
   (a capitalised word that does not open the sentence). "120 euros" against a source saying
   "180 euros" is unsupported however many other words overlap;
3. it does not drop or add a negation against the cited sentence it is closest to ("alcohol is
   reimbursed" against "alcohol is never reimbursed");
4. its content words largely occur in the cited text (lexical support), or — for a paraphrase —
   its embedding is close to one of the cited sentences (semantic support, when an embedder is
   given).

Sentences come from a real segmenter (``sentencex``: abbreviations, decimals and initials stay
inside their sentence), after the text is cut at paragraph breaks and list items. The labelled
set in ``bench/data/grounding-pairs.json`` holds the scorer to its precision and recall
(``bench/answers.py`` reports both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sentencex

from retrieval.embeddings import Embedder
from retrieval.text import FUNCTION_WORDS, NEGATIONS, NUMBER_WORDS, root, word_set

CITATION = re.compile(r"\[(\d{1,3})\]")
# Cosine of MiniLM embeddings above which a paraphrase counts as said by its source.
SEMANTIC_THRESHOLD = 0.75
_MARKERS = re.compile(r"^(?:\s*\[\d{1,3}\])+")
_BLOCKS = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*\u2022]|\d{1,3}[.)])\s)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = FUNCTION_WORDS | word_set("to from into than then also not no yes according source sources")
# What states nothing: saying the documents do not answer, and pleasantries. A sentence is
# taken as one only whole — no number or name in it, no "but" after it — so that "Hi, the limit
# is 500 euros" or "The documents do not say, but hotels are free" still need a source.
_ABSTAINS = re.compile(
    r"^[\"'(]*(i (do not|don't|cannot|can't) (know|find|say|answer)|"
    r"(the |these |your )?(provided |available |retrieved )?"
    r"(sources?|documents?|context|texts?|passages?)( available to you| provided)? "
    r"(do|does|did) ?(not|n't)|"
    r"(the |these )?(sources?|documents?) (don't|doesn't)|"
    r"there is no (information|mention)|no (information|answer) (is|was) (given|found))",
    re.I,
)
_PLEASANTRY = re.compile(
    r"^[\"'(]*(sorry|hello|hi|thanks|thank you|i hope this helps|let me know|happy to help)\b",
    re.I,
)
_CONTRAST = re.compile(r"\b(but|however|although|though|yet|instead|except)\b", re.I)
# DLP placeholders (``<PERSON>``, ``<EMAIL_ADDRESS_1>``, ``<PERSON:ab12>``) stand for redacted text.
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*(?:[_:][0-9a-z]+)?>")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORDISH = re.compile(r"\b[^\W\d_][\w'\u2019-]*")
# Number words count as their digits; "one" is as often a pronoun as a number, left out.
_NUMBER_WORDS = {w: d for w, d in NUMBER_WORDS.items() if w not in ("zero", "one")}
# Capitalised words that are not names even in mid-sentence.
_NOT_NAMES = word_set("i a i'm i've i'd i'll ok")


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    text: str
    cited: tuple[int, ...]
    supported: bool
    factual: bool
    reason: str = ""  # why it is not supported: uncited | claim:<token> | negation | support


@dataclass(slots=True)
class Grounding:
    score: float
    uncited_sentences: list[str] = field(default_factory=list)
    unsupported_sentences: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    answer: str = ""
    checks: list[SentenceCheck] = field(default_factory=list)

    @property
    def failing(self) -> list[SentenceCheck]:
        """The factual sentences that are uncited or unsupported."""
        return [c for c in self.checks if c.factual and not c.supported]

    @property
    def passed(self) -> bool:
        return not self.failing


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, each with the citation markers that follow it."""
    found: list[str] = []
    for block in _BLOCKS.split(text):
        for piece in sentencex.segment("en", block):
            piece = " ".join(piece.split())
            if not piece:
                continue
            leading = _MARKERS.match(piece)
            if leading and found:
                # "[1] Next sentence": the marker closes the sentence before it.
                found[-1] = f"{found[-1]} {leading.group(0).strip()}"
                piece = piece[leading.end() :].strip()
                if not piece:
                    continue
            found.append(piece)
    return found


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 1}


def strip_unknown_citations(answer: str, sources: int) -> str:
    """Remove ``[n]`` markers that do not name one of the ``sources`` the asker retrieved."""
    return CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= sources else "", answer)


def plain(sentence: str) -> str:
    """``sentence`` without its citation markers and DLP placeholders."""
    return _PLACEHOLDER.sub(" ", CITATION.sub(" ", sentence))


def _numbers(text: str) -> set[str]:
    found = {m.group(0).replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}
    found |= {_NUMBER_WORDS[w] for w in _WORD.findall(text.casefold()) if w in _NUMBER_WORDS}
    return {n.lstrip("0") or "0" for n in found}


def _names(sentence: str) -> set[str]:
    """Capitalised words that do not open the sentence: names, places, months, acronyms."""
    words = [m for m in _WORDISH.finditer(sentence) if m.group(0)[0].isupper()]
    opener = re.match(r"^[\W\d_]*", sentence)
    start = opener.end() if opener else 0
    names = set()
    for match in words:
        if match.start() <= start:
            continue
        word = re.sub(r"['\u2019]s$", "", match.group(0)).strip("'\u2019-").casefold()
        if word and word not in _NOT_NAMES:
            names.add(word)
    return names


def missing_claims(sentence: str, source: str) -> list[str]:
    """The numbers and names of ``sentence`` that do not occur in ``source``."""
    bare = plain(sentence)
    missing = sorted(_numbers(bare) - _numbers(source))
    vocabulary = set(re.findall(r"\w+", source.casefold()))
    for name in sorted(_names(bare)):
        parts = re.findall(r"\w+", name)
        if parts and not all(part in vocabulary for part in parts):
            missing.append(name)
    return missing


def _negated(text: str) -> bool:
    words = set(re.findall(r"[a-z']+", text.casefold().replace("\u2019", "'")))
    return bool(words & NEGATIONS) or "cannot" in words or any(w.endswith("n't") for w in words)


def negation_flipped(sentence: str, source: str) -> bool:
    """Whether ``sentence`` and the sentence of ``source`` it shares most words with disagree on
    negation."""
    words = content_words(plain(sentence))
    if not words:
        return False
    closest = max(sentences(source) or [source], key=lambda s: len(words & content_words(s)))
    return _negated(plain(sentence)) != _negated(closest)


def lexical_support(sentence: str, source: str) -> float:
    """Share of the sentence's content words (stemmed) that its source holds."""
    words = {root(w) for w in content_words(plain(sentence))}
    if not words:
        return 1.0
    return len(words & {root(w) for w in content_words(source)}) / len(words)


def is_factual(sentence: str) -> bool:
    """Whether ``sentence`` states something that needs a source (see ``_ABSTAINS``)."""
    bare = plain(sentence).strip()
    words = content_words(bare)
    if not words:
        return False
    if _numbers(bare) or _names(bare) or _CONTRAST.search(bare):
        return True
    if _ABSTAINS.match(bare):
        return False
    return not (_PLEASANTRY.match(bare) and len(words) <= 6)


def check(
    answer: str,
    sources: Sequence[str],
    *,
    embedder: Embedder | None = None,
    lexical_threshold: float = 0.6,
    semantic_threshold: float = SEMANTIC_THRESHOLD,
) -> Grounding:
    """Check ``answer`` against ``sources`` (source ``n`` is ``sources[n - 1]``)."""
    answer = strip_unknown_citations(answer, len(sources))
    checks = [
        judge(sentence, sources, lexical_threshold=lexical_threshold)
        for sentence in sentences(answer)
    ]
    if embedder is not None:
        semantic_support(checks, sources, embedder, semantic_threshold)
    return summarise(answer, checks)


def summarise(answer: str, checks: list[SentenceCheck]) -> Grounding:
    """The score (share of factual sentences backed) and lists of one answer's checks."""
    stated = [c for c in checks if c.factual]
    backed_up = [c for c in stated if c.supported]
    return Grounding(
        score=round(len(backed_up) / len(stated), 3) if stated else 1.0,
        uncited_sentences=[c.text for c in stated if not c.cited],
        unsupported_sentences=[c.text for c in stated if c.cited and not c.supported],
        cited=sorted({n for c in checks for n in c.cited}),
        answer=answer,
        checks=checks,
    )


def judge(
    sentence: str, sources: Sequence[str], *, lexical_threshold: float = 0.6
) -> SentenceCheck:
    """One sentence against the sources it cites (without the semantic step)."""
    cited = tuple(
        dict.fromkeys(int(n) for n in CITATION.findall(sentence) if 1 <= int(n) <= len(sources))
    )
    factual = is_factual(sentence)
    if not cited:
        return SentenceCheck(sentence, cited, False, factual, "uncited")
    cited_text = " ".join(sources[n - 1] for n in cited)
    missing = missing_claims(sentence, cited_text)
    if missing:
        return SentenceCheck(sentence, cited, False, factual, f"claim:{missing[0]}")
    if negation_flipped(sentence, cited_text):
        return SentenceCheck(sentence, cited, False, factual, "negation")
    if lexical_support(sentence, cited_text) < lexical_threshold:
        return SentenceCheck(sentence, cited, False, factual, "support")
    return SentenceCheck(sentence, cited, True, factual)


def semantic_support(
    checks: list[SentenceCheck],
    sources: Sequence[str],
    embedder: Embedder,
    threshold: float = SEMANTIC_THRESHOLD,
) -> None:
    """A paraphrase (its claims all present, too few words in common) is supported when it is
    close to one sentence of the text it cites."""
    for index, old in enumerate(checks):
        if old.reason != "support":
            continue
        cited_text = " ".join(sources[n - 1] for n in old.cited)
        candidates = sentences(cited_text) or [cited_text]
        vectors = embedder.embed([plain(old.text), *candidates])
        best = float(np.max(vectors[1:] @ vectors[0]))
        if best >= threshold:
            checks[index] = SentenceCheck(old.text, old.cited, True, old.factual)
