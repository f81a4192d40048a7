"""The verification a semantic-cache candidate must pass before it is served.

An embedding's cosine says two questions are *about* the same thing; it does not say they have
the same answer. MiniLM scores "move savings to current" against "move current to savings" at
0.99, a negated question at 0.97-0.99, another year or amount at 0.96-0.98. So a candidate above
the cosine threshold is served only if, in addition, the two questions have

- the same numbers, amounts, dates, ordinals and months (``3 nights`` is not ``2 nights``);
- the same negations (``not``, ``never``, ``without``, ``n't``...);
- the same content words: a question that adds a qualifier (``... for contractors``) is narrower
  and another name (``Paris``/``Rome``) is another question; only function words, greetings and
  filler ("hi", "quick question", "I was wondering"), and spelling variants (case, punctuation,
  hyphens, contractions, inflections, a typo of one letter in a word of four or more, two in a
  word of nine or more) may differ. Comparatives and polar words (``under``/``over``,
  ``before``/``after``, ``more``/``less``, ``import``/``export``) are content words: they must
  match;
- the same relations: each of ``to``, ``from``, ``than``, ``into``... bound to the content word
  it points at (``from London``, ``to Paris``), so swapping the two ends of a relation changes
  the question; and where a word makes order matter (``replaced``, ``after``, ``versus``...), the
  same order of content words.

No model call: this runs on every candidate, in microseconds. It errs towards a miss — a miss
costs one model call, a wrong hit serves someone a wrong answer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from retrieval.adapters.minilm import TOKENIZER_PATH
from retrieval.text import FUNCTION_WORDS, NEGATIONS, NUMBER_WORDS, root, word_list, word_set

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
# Prepositions that relate two things: each is bound to the content word after it.
_RELATIONS = {"to": "to", "into": "to", "onto": "to", "towards": "to", "toward": "to"} | {
    word: word for word in word_list("from than via")
}
# Words that make the order of the things around them matter ("who replaced A after B").
_ORDERED = word_set("replaced replace replaces versus vs between after before than")
# Words that carry no meaning a cached answer depends on: politeness, greetings and the filler
# people put around a question.
_FUNCTION = FUNCTION_WORDS | word_set(
    "please kindly tell know let again exactly just also really actually currently one's s "
    "hi hello hey hiya greetings dear morning afternoon evening thanks thank thx cheers "
    "quick question wondering wonder wondered curious help explain show "
    "want wanted like need needed anyone somebody someone"
)
# A clause made only of these (and function words) is filler around the question: "Hi there,
# quick one.", "Sorry to bother you, but I need to know this.", "Do you happen to know?".
_FILLER = word_set(
    "one good there but so well okay ok hmm sorry bother happen happens something curiosity "
    "out while lot advance much many to"
)
# What a question asks for: "When did they meet?" and "Where did they meet?" differ.
_ASKS = {"who": "who", "whom": "who", "whose": "whose", "when": "when", "where": "where"} | {
    "why": "why",
    "how": "how",
    "what": "what",
    "which": "what",
}
# A clause ends at these (a decimal point or thousands separator does not end one).
_CLAUSE = re.compile(r"[!?;:]|\.(?!\d)|,(?!\d)")
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
    relations: frozenset[tuple[str, str]]
    sequence: tuple[str, ...]
    ordered: bool
    asks: frozenset[str]
    spelled: tuple[tuple[str, str], ...] = ()  # (root, word as written) of the content words


def signature(question: str) -> Signature:
    text = question.casefold().replace("\u2019", "'")
    for short, long in _CONTRACTIONS.items():
        text = text.replace(short, long)
    text = text.replace("n't", " not").replace("-", " ")
    numbers: list[str] = []
    negations = 0
    content: list[str] = []
    asks: set[str] = set()
    spelled: dict[str, str] = {}
    relations: set[tuple[str, str]] = set()
    ordered = False
    for clause in _CLAUSE.split(text):
        tokens = [_corrected(_SPELLING.get(t, t)) for t in _TOKEN.findall(clause)]
        if all(t in _FUNCTION or t in _FILLER for t in tokens):
            continue  # filler ("Hi there", "Do you happen to know") or nothing at all
        pending: str | None = None  # a relation waiting for the word it points at
        for token in tokens:
            ordered = ordered or token in _ORDERED
            word: str | None = None
            if token[0] in "$€£" or token[0].isdigit():
                word = token.lstrip("$€£").replace(",", "")
                numbers.append(word)
            elif token in NUMBER_WORDS:
                word = NUMBER_WORDS[token]
                numbers.append(word)
            elif token in _ORDINALS:
                numbers.append("#" + _ORDINALS[token])
            elif token in _CALENDAR:
                word = token[:3]
                numbers.append(word)
            elif token in NEGATIONS:
                negations += 1
            elif token in _RELATIONS:
                pending = _RELATIONS[token]
            elif token in _ASKS:
                asks.add(_ASKS[token])
            elif token not in _FUNCTION and len(token) > 1:
                word = root(token)
                content.append(word)
                spelled.setdefault(word, token)
            if word is not None and pending is not None:
                relations.add((pending, word))
                pending = None
    return Signature(
        numbers=tuple(sorted(Counter(numbers).elements())),
        negations=negations,
        content=frozenset(content),
        relations=frozenset(relations),
        sequence=tuple(dict.fromkeys(content)),
        ordered=ordered,
        asks=frozenset(asks),
        spelled=tuple(spelled.items()),
    )


def _corrected(token: str) -> str:
    """A misspelt function or question word put right ("whhich", "tehre"): the one such word a
    letter away from a token that is no word of the vocabulary."""
    if len(token) < 4 or not token.isalpha() or token in _vocabulary():
        return token
    near = [w for w in _KNOWN_SHORT if _typo(token, w)]
    return near[0] if len(near) == 1 else token


@cache
def _vocabulary() -> frozenset[str]:
    """The whole words of MiniLM's WordPiece vocabulary (30k common English words and names)."""
    model = json.loads(TOKENIZER_PATH.read_text())["model"]["vocab"]
    return frozenset(w for w in model if w.isalpha())


def _typo(a: str, b: str) -> bool:
    """One letter added, dropped, changed or two swapped (two such edits in a long word), and
    not two words in their own right: one of them must be no word of the vocabulary ("Maria"
    and "Mario", "price" and "prize" are two words; "recieve" is a typo)."""
    if min(len(a), len(b)) < 4 or (a[0] != b[0] and a[:2] != b[1::-1]):
        return False
    known = _vocabulary()
    if a in known and b in known:
        return False
    allowed = 2 if min(len(a), len(b)) >= 9 else 1
    return _edits(a, b, allowed) <= allowed


def _edits(a: str, b: str, cap: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), stopped early above ``cap``."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > cap:
            return cap + 1
        previous2, previous = previous, current
    return previous[-1]


# Function and question words of four letters or more: what a misspelt short word is put back to.
_KNOWN_SHORT = tuple(sorted(w for w in _FUNCTION | set(_ASKS) if len(w) >= 4 and w.isalpha()))


def _spelled_alike(a: Signature, b: Signature) -> dict[str, str] | None:
    """The content words of ``a`` not in ``b`` paired one to one with a typo of theirs in
    ``b`` (as roots); None when a word has no such partner, or more than one."""
    left, right = sorted(a.content - b.content), sorted(b.content - a.content)
    if len(left) != len(right):
        return None
    written_a, written_b = dict(a.spelled), dict(b.spelled)
    pairs: dict[str, str] = {}
    for word in left:
        partners = [o for o in right if _typo(written_a.get(word, word), written_b.get(o, o))]
        if len(partners) != 1 or partners[0] in pairs.values():
            return None
        pairs[word] = partners[0]
    return pairs


def same_question(cached: str, asked: str) -> bool:
    """Whether the answer cached for ``cached`` answers ``asked`` (given a high cosine)."""
    a, b = signature(cached), signature(asked)
    if a.numbers != b.numbers or a.negations != b.negations or a.asks != b.asks:
        return False
    typos = _spelled_alike(a, b)
    if typos is None:
        return False
    relations = {(rel, typos.get(word, word)) for rel, word in a.relations}
    if relations != set(b.relations):
        return False
    if a.ordered or b.ordered:
        return [typos.get(w, w) for w in a.sequence] == list(b.sequence)
    return True


def canonical(question: str) -> str:
    """The exact-layer key text: case, whitespace and trailing punctuation do not matter."""
    return " ".join(question.casefold().split()).rstrip(" ?!.")
