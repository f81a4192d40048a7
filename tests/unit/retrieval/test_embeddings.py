"""The int8 MiniLM ONNX embedder: shape, normalisation, order, meaning, token vectors, the async
path, and the per-tenant cache of both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.embeddings import (
    Embedder,
    SentenceVectors,
    TokenEmbedder,
    TokenVectors,
    mean_pool_normalize,
)

EMBEDDER = OnnxMiniLMEmbedder(threads=2)


def test_vectors_are_384_dimensional_unit_float32_rows() -> None:
    texts = ["Hello world.", "", "A much longer sentence about data residency and keys. " * 80]
    vectors = EMBEDDER.embed(texts)
    assert isinstance(EMBEDDER, Embedder)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert EMBEDDER.embed([]).shape == (0, 384)


def test_semantically_close_sentences_score_higher() -> None:
    cat, kitten, revenue, rug = EMBEDDER.embed(
        [
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Quarterly revenue rose by twelve percent.",
            "How do I reset my password?",
        ]
    )
    assert cat @ kitten > 0.5
    assert cat @ kitten > cat @ revenue + 0.3
    assert cat @ kitten > cat @ rug + 0.3
    reset, forgot = EMBEDDER.embed(["How do I reset my password?", "I forgot my login password"])
    assert reset @ forgot > reset @ revenue + 0.3


def test_batching_keeps_input_order() -> None:
    texts = [f"Document {i} is about {topic}." for i, topic in enumerate(["tax", "cats"] * 40)]
    together = OnnxMiniLMEmbedder(batch_size=7).embed(texts)
    alone = np.vstack([EMBEDDER.embed([t]) for t in texts[:5]])
    assert (np.sum(together[:5] * alone, axis=1) > 0.99).all()


def test_token_vectors_are_read_in_context_and_placed_in_the_text() -> None:
    text = "The fossils came from the Burgess Shale. All three lacked tentacles."
    fossils, alone = EMBEDDER.embed_tokens([text, "All three lacked tentacles."])
    assert isinstance(EMBEDDER, TokenEmbedder)
    assert fossils.vectors.dtype == np.float16 and fossils.vectors.shape[1] == 384
    np.testing.assert_allclose(
        np.linalg.norm(fossils.vectors.astype(np.float32), axis=1), 1.0, atol=1e-2
    )
    # [CLS] and [SEP] are left out; every token's span points at its own text.
    assert [text[a:b] for a, b in fossils.spans[:3]] == ["The", "fossils", "came"]
    start = text.index("All three")
    second = fossils.within(start, len(text))
    assert second is not None and second.shape == alone.vectors.shape
    # The same words read after the first sentence are not the same vectors as read alone.
    assert not np.allclose(second, alone.vectors.astype(np.float32), atol=1e-2)
    # A span past what the encoder read has no vectors (the caller reads that text alone).
    long = " ".join(["word"] * 400)
    (cut,) = OnnxMiniLMEmbedder(max_length=64).embed_tokens([long])
    assert len(cut.vectors) == 62 and cut.within(len(long) - 4, len(long)) is None


async def test_embed_async_matches_embed() -> None:
    texts = ["Residency pins a tenant to a region.", "Keys are wrapped by the tenant's KMS."]
    np.testing.assert_allclose(await EMBEDDER.embed_async(texts), EMBEDDER.embed(texts), atol=1e-5)


def test_mean_pooling_ignores_padding() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool_normalize(hidden, mask), [[1.0, 0.0]])


class CountingEmbedder:
    """The real embedder, counting the texts it was asked to embed."""

    model_id = EMBEDDER.model_id
    dimension = EMBEDDER.dimension

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts += list(texts)
        return EMBEDDER.embed(texts)

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        self.texts += list(texts)
        return EMBEDDER.embed_tokens(texts)

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)


def test_sentence_vectors_are_reused_per_tenant_only_and_evicted_oldest_first() -> None:
    counting = CountingEmbedder()
    cache = SentenceVectors(counting, size=3)
    a, b = cache.for_tenant("a"), cache.for_tenant("b")
    first = a.embed(["Hotels up to 180 euros.", "Meals up to 40 euros."])
    again = a.embed(["Meals up to 40 euros.", "Hotels up to 180 euros."])
    np.testing.assert_allclose(first[::-1], again)
    assert len(counting.texts) == 2  # the second call embedded nothing
    b.embed(["Hotels up to 180 euros."])
    assert len(counting.texts) == 3  # another tenant never shares an entry
    a.embed(["Trains after four hours."])  # a fourth entry: the least recently used goes
    a.embed(["Hotels up to 180 euros.", "Meals up to 40 euros."])
    assert counting.texts[-2:] == ["Trains after four hours.", "Meals up to 40 euros."]


def test_token_vectors_are_reused_per_tenant_only_and_evicted_oldest_first() -> None:
    counting = CountingEmbedder()
    cache = SentenceVectors(counting, token_size=2)
    a, b = cache.for_tenant("a"), cache.for_tenant("b")
    assert isinstance(a, TokenEmbedder) and isinstance(b, TokenEmbedder)
    hotels, meals = a.embed_tokens(["Hotels up to 180 euros.", "Meals up to 40 euros."])
    again = a.embed_tokens(["Meals up to 40 euros."])[0]
    np.testing.assert_array_equal(again.vectors, meals.vectors)
    assert len(counting.texts) == 2
    b.embed_tokens(["Hotels up to 180 euros."])
    assert len(counting.texts) == 3  # another tenant never shares an entry
    a.embed_tokens(["Hotels up to 180 euros."])  # tenant a's hotels went when b's came in
    assert counting.texts[-1] == "Hotels up to 180 euros." and len(counting.texts) == 4
    assert hotels.spans.tolist() == a.embed_tokens(["Hotels up to 180 euros."])[0].spans.tolist()


class WordsOnly:
    """An embedder that gives sentence vectors but no token vectors."""

    model_id = EMBEDDER.model_id
    dimension = EMBEDDER.dimension

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return EMBEDDER.embed(texts)

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)


def test_a_model_without_token_vectors_still_answers_extractively() -> None:
    from retrieval.extractive import extract

    tenant = SentenceVectors(WordsOnly()).for_tenant("a")
    assert not isinstance(tenant, TokenEmbedder)
    assert isinstance(SentenceVectors(EMBEDDER).for_tenant("a"), TokenEmbedder)
    policy = ["Hotels are reimbursed up to 180 euros a night in Paris.", "Meals: 40 euros a day."]
    found = extract("What is the hotel limit per night in Paris?", policy, tenant)
    assert found and "180 euros" in found[0].text
