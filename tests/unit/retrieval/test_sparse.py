"""BM25 sparse vectors: the tokenizer's rules, stable ids, TF saturation, length normalisation."""

from __future__ import annotations

import hashlib

import pytest

from retrieval.sparse import document_vector, query_vector, term_index, tokenize


def test_tokenizer_lowercases_drops_stopwords_and_stems_plurals() -> None:
    assert tokenize("The Policies of the TENANTS, and classes; GDPR-2016 is a law.") == [
        "policy",
        "tenant",
        "class",
        "gdpr",
        "2016",
        "law",
    ]
    assert tokenize("Straße ÉCOLE \uff46\uff55\uff4c\uff4c status analysis") == [
        "straße",
        "école",
        "full",
        "status",
        "analysis",
    ]


def test_term_ids_are_stable_unsigned_32_bit() -> None:
    assert term_index("backup") == term_index("backup")
    assert term_index("backup") != term_index("backups")
    assert all(0 <= term_index(t) < 2**32 for t in ["a", "backup", "école"])
    # Pinned: stored vectors depend on this never changing.
    assert term_index("backup") == int.from_bytes(
        hashlib.blake2b(b"backup", digest_size=4).digest(), "big"
    )


def test_vectors_are_sorted_without_duplicates() -> None:
    indices, values = document_vector("backup backups Backup restore the restore keys key")
    assert indices == sorted(set(indices))
    assert len(indices) == len(values) == 3
    q_indices, q_values = query_vector("backup Backups restore restore")
    assert q_indices == sorted(set(q_indices)) and len(q_indices) == 2
    assert q_values == [1.0, 1.0]
    assert set(q_indices) <= set(indices)


def test_term_frequency_saturates_and_long_documents_weigh_less() -> None:
    def weight(text: str, term: str = "backup", avg: float = 20.0) -> float:
        indices, values = document_vector(text, avg_doc_length=avg)
        return dict(zip(indices, values, strict=True))[term_index(term)]

    one, two, ten = (weight(" ".join(["backup"] * n + ["filler"] * 9)) for n in (1, 2, 10))
    assert one < two < ten < 1.2 + 1
    assert two - one > (ten - two) / 8  # each extra occurrence adds less
    short = weight("backup filler")
    long = weight("backup " + " ".join(f"word{i}" for i in range(60)))
    assert short > long
    # At average length a single occurrence has weight exactly 1.
    assert weight("backup " + " ".join(f"w{i}" for i in range(19))) == pytest.approx(1.0)


def test_no_idf_is_baked_in() -> None:
    # A common and a rare term with the same frequency get the same document weight.
    _, values = document_vector("the-common data rare-zyzzyva", avg_doc_length=4)
    assert len(set(round(v, 9) for v in values)) == 1


def test_empty_text_gives_an_empty_vector() -> None:
    assert tuple(document_vector("the and of")) == ([], [])
    assert tuple(query_vector("")) == ([], [])
    with pytest.raises(ValueError, match="avg_doc_length"):
        document_vector("x", avg_doc_length=0)
