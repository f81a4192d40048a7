"""Groundedness: is each sentence of an answer supported by the source it cites?

The answer cites sources as ``[n]``. Each sentence is checked against the text of the chunks it
cites: its content words must largely occur there (lexical support), or — for a paraphrase — its
embedding must be close to one of the cited chunk's sentences (semantic support). Sentences with
no citation are reported when they state something (not greetings, hedges or "the sources do not
say"). Citations to numbers the asker was not given are removed from the answer: a citation may
only point at a chunk the asker retrieved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.embeddings import Embedder
from retrieval.text import FUNCTION_WORDS, word_set

CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = FUNCTION_WORDS | word_set("to from into than then also not no yes according source sources")
_NON_FACTUAL = re.compile(
    r"^(i (do not|don't|cannot|can't) (know|find)|the (provided )?sources? (do not|don't)|"
    r"(sorry|hello|hi|thanks|thank you)\b|i hope|let me know|in summary\b|overall\b)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    text: str
    cited: tuple[int, ...]
    supported: bool
    factual: bool


@dataclass(slots=True)
class Grounding:
    score: float
    uncited_sentences: list[str] = field(default_factory=list)
    unsupported_sentences: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    answer: str = ""


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 1}


def strip_unknown_citations(answer: str, sources: int) -> str:
    """Remove ``[n]`` markers that do not name one of the ``sources`` the asker retrieved."""
    return CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= sources else "", answer)


def lexical_support(sentence: str, source: str) -> float:
    words = content_words(CITATION.sub("", sentence))
    if not words:
        return 1.0
    return len(words & content_words(source)) / len(words)


def check(
    answer: str,
    sources: Sequence[str],
    *,
    embedder: Embedder | None = None,
    lexical_threshold: float = 0.6,
    semantic_threshold: float = 0.75,
) -> Grounding:
    """Check ``answer`` against ``sources`` (source ``n`` is ``sources[n - 1]``)."""
    answer = strip_unknown_citations(answer, len(sources))
    checks: list[SentenceCheck] = []
    pending: list[tuple[int, str, str]] = []  # (check index, sentence, cited text) for embedding
    for sentence in sentences(answer):
        cited = tuple(dict.fromkeys(int(n) for n in CITATION.findall(sentence)))
        factual = bool(content_words(CITATION.sub("", sentence))) and not _NON_FACTUAL.match(
            sentence
        )
        cited_text = " ".join(sources[n - 1] for n in cited)
        backed = bool(cited) and lexical_support(sentence, cited_text) >= lexical_threshold
        checks.append(SentenceCheck(sentence, cited, backed, factual))
        if cited and not backed and embedder is not None:
            pending.append((len(checks) - 1, sentence, cited_text))
    if pending and embedder is not None:
        _semantic(checks, pending, embedder, semantic_threshold)
    stated = [c for c in checks if c.factual]
    backed_up = [c for c in stated if c.supported]
    return Grounding(
        score=round(len(backed_up) / len(stated), 3) if stated else 1.0,
        uncited_sentences=[c.text for c in stated if not c.cited],
        unsupported_sentences=[c.text for c in stated if c.cited and not c.supported],
        cited=sorted({n for c in checks for n in c.cited}),
        answer=answer,
    )


def _semantic(
    checks: list[SentenceCheck],
    pending: list[tuple[int, str, str]],
    embedder: Embedder,
    threshold: float,
) -> None:
    """A paraphrase is supported when it is close to one sentence of the cited text."""
    for index, sentence, cited_text in pending:
        candidates = sentences(cited_text) or [cited_text]
        vectors = embedder.embed([CITATION.sub("", sentence), *candidates])
        best = float(np.max(vectors[1:] @ vectors[0]))
        if best >= threshold:
            old = checks[index]
            checks[index] = SentenceCheck(old.text, old.cited, True, old.factual)
