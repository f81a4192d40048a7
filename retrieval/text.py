"""Small text helpers shared by the cache guard, groundedness and extractive answers."""

from __future__ import annotations

from functools import lru_cache

import snowballstemmer

_STEMMER = snowballstemmer.stemmer("english")


def word_list(text: str) -> list[str]:
    """The whitespace-separated words of ``text``, in order."""
    return text.split()


def word_set(text: str) -> frozenset[str]:
    """A frozenset of the whitespace-separated words of ``text`` (for readable word lists)."""
    return frozenset(text.split())


# Function words: no meaning an answer or a cached question depends on.
FUNCTION_WORDS = word_set(
    """a an the is are was were be been being am do does did doing have has had having i me my
    mine we us our you your yours he him his she her it its they them their this that these those
    there here what which who whom whose where when why how can could should would will shall may
    might must of for in on at by with as and or if so any some all each every per about"""
)


# Words that negate what follows (the cache guard and groundedness compare them).
NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "without",
        "except",
        "excluding",
    }
)
# Number words as their digits.
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        word_list(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "half": "0.5",
    "dozen": "12",
}


@lru_cache(maxsize=65536)
def root(word: str) -> str:
    """The Snowball (Porter 2) stem of a lower-case ``word``, its possessive dropped:
    "execution" and "executed" both give "execut", "Inalchuq's" gives "inalchuq"."""
    if word.endswith(("'s", "\u2019s")):
        word = word[:-2]
    return str(_STEMMER.stemWord(word))
