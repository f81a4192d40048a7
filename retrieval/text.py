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


@lru_cache(maxsize=65536)
def root(word: str) -> str:
    """The Snowball (Porter 2) stem of a lower-case ``word``, its possessive dropped:
    "execution" and "executed" both give "execut", "Inalchuq's" gives "inalchuq"."""
    if word.endswith(("'s", "\u2019s")):
        word = word[:-2]
    return str(_STEMMER.stemWord(word))
