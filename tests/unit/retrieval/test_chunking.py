"""The chunker with the real MiniLM tokenizer: budgets, overlap, heading paths, determinism."""

from __future__ import annotations

import itertools
import random

import pytest

from retrieval.adapters.minilm import MiniLMTokenCounter
from retrieval.chunking import Chunk, Chunker, chunk_blocks
from retrieval.parsing import MARKDOWN, Block, BlockKind, parse_document

COUNTER = MiniLMTokenCounter()
_VOCABULARY = """
    retention policy encryption tenant backup quarterly revenue unbelievably interoperability
    the of a compliance officer audit log region key
"""
WORDS = _VOCABULARY.split()


def prose(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 25))).capitalize() + "."
        for _ in range(sentences)
    )


def document() -> list[Block]:
    source = (
        f"# Handbook\n\n{prose(1, 2)}\n\n{prose(2, 1)}\n\n"
        "## Short list\n\n- one\n- two\n- three\n\n"
        f"## Long section\n\n{prose(3, 60)}\n\n"
        "### Table\n\n| Tier | Price |\n|---|---|\n| Gold | 10 |\n| Silver | 5 |\n"
    )
    return parse_document(source.encode(), MARKDOWN)


def count(text: str) -> int:
    return COUNTER.count_tokens([text])[0]


def test_token_count_of_a_text_is_the_sum_over_its_words() -> None:
    text = prose(9, 5) + " Straße, e-mail: GDPR-2016 (v2.1)!"
    assert count(text) == sum(COUNTER.count_tokens(text.split()))


def test_chunks_respect_the_budget_and_keep_every_word() -> None:
    blocks = document()
    chunks = chunk_blocks(blocks, COUNTER, max_tokens=64, overlap_tokens=12)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.token_count == count(chunk.text) <= 64
    # Every content word appears in some chunk, in order within its section.
    long_text = next(
        b.text
        for b in blocks
        if b.kind is BlockKind.PARAGRAPH and b.heading_path[-1] == "Long section"
    )
    long_chunks = [c for c in chunks if c.heading_path == ("Handbook", "Long section")]
    assert all(word in " ".join(c.text for c in long_chunks) for word in long_text.split())
    assert long_chunks[0].text.startswith(long_text.split()[0])
    assert long_chunks[-1].text.endswith(long_text.split()[-1])


def test_never_splits_inside_a_word() -> None:
    blocks = document()
    words = {w for b in blocks for w in b.text.split()} | {"-"}
    for chunk in chunk_blocks(blocks, COUNTER, max_tokens=40, overlap_tokens=8):
        assert set(chunk.text.split()) <= words


def _shared(previous: Chunk, following: Chunk) -> str:
    """The longest start of ``following`` that ``previous`` ends with."""
    words = following.text.split()
    shared = ""
    for size in range(1, len(words)):
        if previous.text.endswith(" ".join(words[:size])):
            shared = " ".join(words[:size])
    return shared


def test_consecutive_chunks_repeat_whole_sentences() -> None:
    # Sentences of three to six words: the 16-token overlap holds one or more whole ones.
    rng = random.Random(4)
    text = " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))).capitalize() + "."
        for _ in range(80)
    )
    blocks = parse_document(f"# Notes\n\n{text}".encode(), MARKDOWN)
    chunks = chunk_blocks(blocks, COUNTER, max_tokens=64, overlap_tokens=16)
    assert len(chunks) >= 3
    overlapping = 0
    for previous, following in itertools.pairwise(chunks):
        shared = _shared(previous, following)
        assert following.text[0].isupper()
        if not shared:
            # Only when the last sentence alone is over the overlap budget.
            last = previous.text.rsplit(". ", 1)[-1]
            assert count(last) > 16
            continue
        overlapping += 1
        assert count(shared) <= 16
        # The repeated part is whole sentences: it starts where a sentence starts.
        assert previous.text.endswith(". " + shared) and shared.endswith(".")
    assert overlapping >= len(chunks) // 2


def test_no_chunk_starts_inside_a_sentence_cut_at_its_end() -> None:
    chunks = chunk_blocks(document(), COUNTER, max_tokens=64, overlap_tokens=12)
    long_chunks = [c for c in chunks if c.heading_path == ("Handbook", "Long section")]
    assert len(long_chunks) >= 3
    for previous, following in itertools.pairwise(long_chunks):
        shared = _shared(previous, following)
        if previous.text.endswith("."):
            # Its last sentence is longer than the overlap: nothing is repeated, and the
            # next chunk starts with a sentence of its own.
            assert shared == "" or previous.text.endswith(". " + shared)
            assert following.text[0].isupper()
        else:
            # Cut inside an over-long sentence: its last words carry over.
            assert shared and count(shared) <= 12


def test_small_blocks_merge_under_one_heading_and_sections_never_mix() -> None:
    chunks = chunk_blocks(document(), COUNTER, max_tokens=200, overlap_tokens=30)
    paths = [c.heading_path for c in chunks]
    assert paths[0] == ("Handbook",)
    short = [c for c in chunks if c.heading_path == ("Handbook", "Short list")]
    assert [c.text for c in short] == ["- one\n- two\n- three"]
    table = [c for c in chunks if c.heading_path[-1] == "Table"]
    assert table[0].text == "Tier | Price\nGold | 10\nSilver | 5"
    assert table[0].heading_path == ("Handbook", "Long section", "Table")
    # The two intro paragraphs share one chunk, separated by a blank line.
    assert "\n\n" in chunks[0].text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_index_text_carries_the_title_and_heading_path() -> None:
    chunk = Chunk(0, "Body text.", ("Handbook", "Leave"), 3)
    assert chunk.index_text() == "Handbook > Leave\n\nBody text."
    assert chunk.index_text("Travel  policy") == "Travel policy > Handbook > Leave\n\nBody text."
    # A title that is also the first heading is said once.
    assert chunk.index_text("handbook") == "Handbook > Leave\n\nBody text."
    assert Chunk(0, "Body.", (), 2).index_text("Expenses") == "Expenses\n\nBody."
    assert Chunk(0, "Body.", (), 2).index_text() == "Body."
    # What users are shown stays the content alone.
    assert chunk.text == "Body text."


def test_chunking_is_deterministic() -> None:
    first = chunk_blocks(document(), COUNTER, max_tokens=50, overlap_tokens=10)
    second = Chunker(COUNTER, max_tokens=50, overlap_tokens=10).chunk(document())
    assert first == second


def test_a_word_longer_than_the_budget_is_cut_into_bounded_pieces() -> None:
    blob = "x9" * 400
    blocks = [Block(BlockKind.PARAGRAPH, f"before {blob} after", ("Data",))]
    chunks = chunk_blocks(blocks, COUNTER, max_tokens=32, overlap_tokens=4)
    assert all(c.token_count <= 32 for c in chunks)
    assert "".join(c.text for c in chunks).count("x9") >= 400


def test_sentences_are_preferred_cut_points() -> None:
    text = " ".join(f"Sentence number {i} talks about retention." for i in range(30))
    blocks = [Block(BlockKind.PARAGRAPH, text, ())]
    chunks = chunk_blocks(blocks, COUNTER, max_tokens=40, overlap_tokens=0)
    assert all(c.text.endswith(".") for c in chunks)


def test_headings_alone_make_no_chunks_and_settings_are_checked() -> None:
    assert chunk_blocks([Block(BlockKind.HEADING, "Only", ("Only",), 1)], COUNTER) == []
    with pytest.raises(ValueError, match="overlap"):
        Chunker(COUNTER, max_tokens=20, overlap_tokens=15)
