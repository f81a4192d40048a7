"""The verification a semantic-cache candidate must pass before it is served.

An embedding's cosine says two questions are *about* the same thing; it does not say they have
the same answer. MiniLM scores "move savings to current" against "move current to savings" at
0.99, a negated question at 0.97-0.99, another year or amount at 0.96-0.98. So a candidate above
the cosine threshold is served only if, in addition, the two questions have

- the same numbers, amounts, dates, ordinals and months (``3 nights`` is not ``2 nights``);
- the same negations (``not``, ``never``, ``without``, ``n't``...);
- the same content words: a question that adds a qualifier (``... for contractors``) is narrower
  and another name (``Paris``/``Rome``) is another question; only function words, politeness and
  spelling variants (case, punctuation, hyphens, contractions, plurals) may differ;
- the same order of content words when the question is directional (``to``, ``from``, ``than``,
  ``after``...): swapping the two ends of a relation changes the answer.

No model call: this runs on every candidate, in microseconds. It errs towards a miss — a miss
costs one model call, a wrong hit serves someone a wrong answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from retrieval.text import FUNCTION_WORDS, NEGATIONS, NUMBER_WORDS, word_list, word_set

_CONTRACTIONS = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "what's": "what is",
    "who's": "who is",
    "where's": "where is",
    "when's": "when is",
    "how's": "how is",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "i'm": "i am",
    "i've": "i have",
    "i'd": "i would",
    "i'll": "i will",
    "let's": "let us",
}
_ORDINALS = {
    word: str(value)
    for value, word in enumerate(
        word_list("zeroth first second third fourth fifth sixth seventh eighth ninth tenth")
    )
} | {"last": "last", "next": "next", "previous": "previous"}
_CALENDAR = word_set(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday "
    "saturday sunday today tomorrow yesterday weekend weekday weekly monthly yearly annual "
    "annually daily quarterly"
)
_DIRECTIONAL = word_set(
    "to from into onto than versus vs after before over under replaced replace replaces "
    "above below between"
)
# Words that carry no meaning a cached answer depends on.
_FUNCTION = FUNCTION_WORDS | word_set(
    "please kindly tell know let again exactly just also really actually currently one's s"
)
_SPELLING = {
    "max": "maximum",
    "min": "minimum",
    "approx": "approximately",
    "info": "information",
    "e-mail": "email",
    "wi-fi": "wifi",
}
_TOKEN = re.compile(r"[$€£]?\d[\d,]*(?:\.\d+)?%?|[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True, slots=True)
class Signature:
    numbers: tuple[str, ...]
    negations: int
    content: frozenset[str]
    sequence: tuple[str, ...]
    directional: bool


def _stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def signature(question: str) -> Signature:
    text = question.casefold().replace("\u2019", "'")
    for short, long in _CONTRACTIONS.items():
        text = text.replace(short, long)
    text = text.replace("n't", " not").replace("-", " ")
    numbers: list[str] = []
    negations = 0
    content: list[str] = []
    directional = False
    for token in _TOKEN.findall(text):
        token = _SPELLING.get(token, token)
        if token[0] in "$€£" or token[0].isdigit():
            numbers.append(token.lstrip("$€£").replace(",", ""))
        elif token in NUMBER_WORDS:
            numbers.append(NUMBER_WORDS[token])
        elif token in _ORDINALS:
            numbers.append("#" + _ORDINALS[token])
        elif token in _CALENDAR:
            numbers.append(token[:3])
        elif token in NEGATIONS:
            negations += 1
        elif token in _DIRECTIONAL:
            directional = True
        elif token.endswith("'s"):
            content.append(_stem(token[:-2]))
        elif token not in _FUNCTION and len(token) > 1:
            content.append(_stem(token))
    return Signature(
        numbers=tuple(sorted(Counter(numbers).elements())),
        negations=negations,
        content=frozenset(content),
        sequence=tuple(dict.fromkeys(content)),
        directional=directional,
    )


def same_question(cached: str, asked: str) -> bool:
    """Whether the answer cached for ``cached`` answers ``asked`` (given a high cosine)."""
    a, b = signature(cached), signature(asked)
    if a.numbers != b.numbers or a.negations != b.negations or a.content != b.content:
        return False
    if a.directional or b.directional:
        return a.sequence == b.sequence and a.directional == b.directional
    return True


def canonical(question: str) -> str:
    """The exact-layer key text: case, whitespace and trailing punctuation do not matter."""
    return " ".join(question.casefold().split()).rstrip(" ?!.")
