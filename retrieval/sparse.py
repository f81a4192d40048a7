"""BM25-style sparse vectors for the lexical half of hybrid search.

Tokenizer (documented because queries and documents must agree, and stored vectors depend on it):
NFKC-normalise and lowercase; terms are runs of Unicode word characters (letters, digits,
underscore; so "GDPR-2016" gives "gdpr" and "2016"); terms of one character and a short English
stopword list are dropped; a light plural stemmer maps "policies" to "policy",
"classes" to "class" and "backups" to "backup" (words ending in "ss", "us" or "is" are left alone).

Term ids are the first four bytes of the term's BLAKE2b digest as an unsigned 32-bit integer:
stable across processes, machines and Python versions (unlike ``hash``). Two terms that collide
share one dimension; on the document side their frequencies add up.

Document weights are BM25's term-frequency part, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl /
avgdl))`` with ``dl`` the document's term count. Query weights are 1.0 per distinct term. IDF is
NOT in either: the vector store applies it from its own corpus statistics (Qdrant's
``Modifier.IDF``), so a vector stays valid as the corpus grows.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from typing import Protocol

from retrieval.vectorstore import SparseVector

K1 = 1.2
B = 0.75
DEFAULT_AVG_DOC_LENGTH = 120.0

_TERM = re.compile(r"\w+")
_STOPWORDS = """
    a an and are as at be been but by can did do does for from had has have he her his how i if in
    into is it its me my no not of on or our she so such than that the their them then there these
    they this to too was we were what when where which who why will with you your
"""
STOPWORDS = frozenset(_STOPWORDS.split())


def stem(term: str) -> str:
    if len(term) <= 3 or term.endswith(("ss", "us", "is")):
        return term
    if term.endswith("ies") and len(term) > 4:
        return term[:-3] + "y"
    if term.endswith(("sses", "xes", "ches", "shes")):
        return term[:-2]
    if term.endswith("s"):
        return term[:-1]
    return term


def tokenize(text: str) -> list[str]:
    """The terms of ``text`` in order, repeats kept (see the module docstring for the rules)."""
    normalised = unicodedata.normalize("NFKC", text).lower()
    return [
        stem(term) for term in _TERM.findall(normalised) if len(term) > 1 and term not in STOPWORDS
    ]


def term_index(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big")


def document_vector(
    text: str, *, avg_doc_length: float = DEFAULT_AVG_DOC_LENGTH, k1: float = K1, b: float = B
) -> SparseVector:
    """BM25 term-frequency weights of a chunk (no IDF); empty for a text with no terms."""
    if avg_doc_length <= 0:
        raise ValueError("avg_doc_length must be positive")
    terms = tokenize(text)
    frequencies = Counter(term_index(term) for term in terms)
    norm = k1 * (1 - b + b * len(terms) / avg_doc_length)
    indices = sorted(frequencies)
    values = [frequencies[i] * (k1 + 1) / (frequencies[i] + norm) for i in indices]
    return SparseVector(indices, values)


def query_vector(text: str) -> SparseVector:
    """1.0 for each distinct query term: the store's IDF then weighs them."""
    indices = sorted({term_index(term) for term in tokenize(text)})
    return SparseVector(indices, [1.0] * len(indices))


class SparseAnalyser(Protocol):
    """Text to sparse vectors; documents and queries of one index must use the same one."""

    name: str

    def document(self, text: str) -> SparseVector: ...

    def query(self, text: str) -> SparseVector: ...


class PluralTerms:
    """The analyser above: word runs, a short stop list, a light plural stemmer."""

    name = "plural-stem"

    def document(self, text: str) -> SparseVector:
        return document_vector(text)

    def query(self, text: str) -> SparseVector:
        return query_vector(text)


# The analyser of every index and query (compared with Qdrant's Snowball BM25 analyser in
# ``bench/retrieval_quality.py``: no better on the public sets, see docs/PERFORMANCE.md).
ANALYSER: SparseAnalyser = PluralTerms()
