"""Structure-aware, token-bounded chunking of parsed blocks.

Rules, in order of precedence:

- A chunk never mixes sections: consecutive content blocks with the same heading path form a
  section, and each chunk keeps that path (``heading_path``) and a document-wide ``ordinal``.
- Inside a section, small consecutive blocks (paragraphs, list items, table rows) are merged until
  the next one would exceed ``max_tokens`` of content.
- A block too large for the budget is cut at the last block, then sentence, then word boundary
  that fits; never inside a word. (A single "word" longer than the whole budget — an encoded blob
  — is the one exception: it is cut into budget-sized pieces of characters.)
- When a section continues into the next chunk, that chunk starts with the last whole sentences
  of the previous one that fit in ~``overlap_tokens`` (none if the last sentence is longer), so
  a chunk never starts in the middle of a sentence; only after a cut inside an over-long
  sentence does it start with that sentence's last words.
- Token counts use the embedding model's tokenizer (``TokenCounter``), without special tokens; for
  MiniLM's WordPiece a text's count is the sum of its whitespace-separated words' counts, which is
  what lets the chunker budget word by word.

Heading blocks are not content: their text travels in the heading path. ``index_text`` puts the
document's title and that path in front of the content (contextual indexing), so that the dense
and sparse vectors know what the chunk is about and where it sits ("Travel policy > Hotels" for a
chunk that only says "Up to 180 euros a night"). The text shown to users is ``text`` alone. The
output is a pure function of the blocks and the settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from retrieval.parsing import Block, BlockKind

DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30
HEADING_SEPARATOR = " > "

_WORD = re.compile(r"(\s*)(\S+)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


class TokenCounter(Protocol):
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable unit. ``text`` is the content shown to users and the language model;
    ``index_text(title)`` is what the dense and sparse encoders see."""

    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    token_count: int

    def index_text(self, title: str = "") -> str:
        """The document's title and the heading path, a blank line, the content. The title is
        left out where the path already starts with it (a document whose first heading is its
        title)."""
        path = list(self.heading_path)
        title = " ".join(title.split())
        if title and (not path or path[0].casefold() != title.casefold()):
            path.insert(0, title)
        if not path:
            return self.text
        return HEADING_SEPARATOR.join(path) + "\n\n" + self.text


@dataclass(frozen=True, slots=True)
class _Piece:
    word: str
    tokens: int
    sep: str  # what goes before the word: "" at a section start, " ", "\n" or "\n\n"

    @property
    def sentence_end(self) -> bool:
        return _SENTENCE_END.search(self.word) is not None


class Chunker:
    """Turns blocks into chunks; keeps a cache of word token counts across calls."""

    def __init__(
        self,
        counter: TokenCounter,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    ) -> None:
        if max_tokens < 8 or not 0 <= overlap_tokens <= max_tokens // 2:
            raise ValueError("need max_tokens >= 8 and 0 <= overlap_tokens <= max_tokens / 2")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self._counts: dict[str, int] = {}

    def chunk(self, blocks: Iterable[Block]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for path, section in _sections(blocks):
            pieces = self._pieces(section)
            for text, tokens in self._pack(pieces):
                chunks.append(Chunk(len(chunks), text, path, tokens))
        return chunks

    # -- words and their token counts -------------------------------------------------------

    def _count(self, words: Iterable[str]) -> dict[str, int]:
        missing = sorted({w for w in words if w not in self._counts})
        if missing:
            if len(self._counts) > 200_000:
                self._counts.clear()
            self._counts.update(zip(missing, self.counter.count_tokens(missing), strict=True))
        return self._counts

    def _pieces(self, section: list[Block]) -> list[_Piece]:
        raw: list[tuple[str, str]] = []
        for block in section:
            block_sep = "\n" if block.kind in (BlockKind.LIST_ITEM, BlockKind.TABLE) else "\n\n"
            for i, (space, word) in enumerate(_words(_render(block))):
                sep = block_sep if i == 0 else ("\n" if "\n" in space else " ")
                raw.append((sep, word))
        counts = self._count(word for _, word in raw)
        pieces: list[_Piece] = []
        for sep, word in raw:
            tokens = counts[word]
            if tokens <= self.max_tokens:
                pieces.append(_Piece(word, tokens, sep))
            else:
                for j, part in enumerate(self._split_word(word)):
                    pieces.append(_Piece(part, self._count([part])[part], sep if j == 0 else " "))
        if pieces:
            pieces[0] = _Piece(pieces[0].word, pieces[0].tokens, "")
        return pieces

    def _split_word(self, word: str) -> list[str]:
        parts: list[str] = []
        rest = word
        while rest:
            low, high = 1, len(rest)
            while low < high:  # the longest prefix within the budget
                mid = (low + high + 1) // 2
                if self._count([rest[:mid]])[rest[:mid]] <= self.max_tokens:
                    low = mid
                else:
                    high = mid - 1
            parts.append(rest[:low])
            rest = rest[low:]
        return parts

    # -- packing ------------------------------------------------------------------------------

    def _pack(self, pieces: list[_Piece]) -> Iterable[tuple[str, int]]:
        start = fresh = 0  # pieces[start:fresh] repeat the previous chunk's tail
        while fresh < len(pieces):
            # Shed overlap until at least one new piece fits beside it.
            while start < fresh and _tokens(pieces, start, fresh + 1) > self.max_tokens:
                start += 1
            end, total = start, 0
            while end < len(pieces) and total + pieces[end].tokens <= self.max_tokens:
                total += pieces[end].tokens
                end += 1
            if end < len(pieces):
                end = self._best_cut(pieces, start, fresh, end)
            yield _join(pieces[start:end]), _tokens(pieces, start, end)
            start, fresh = self._overlap_start(pieces, start, end), end

    def _best_cut(self, pieces: list[_Piece], start: int, fresh: int, end: int) -> int:
        """Prefer ending at a block boundary, then a sentence end, if that keeps at least half
        the budget in use; otherwise fill the budget up to the last whole word."""
        half = self.max_tokens // 2
        used = 0
        best_block = best_sentence = None
        for i in range(start, end):
            used += pieces[i].tokens
            if used < half or i < fresh:
                continue
            if i + 1 < len(pieces) and pieces[i + 1].sep in ("\n", "\n\n"):
                best_block = i + 1
            if pieces[i].sentence_end:
                best_sentence = i + 1
        return best_block or best_sentence or end

    def _overlap_start(self, pieces: list[_Piece], start: int, end: int) -> int:
        budget, i = self.overlap_tokens, end
        # Step back over whole words while they fit; always make progress past ``start``.
        while i - 1 > start and pieces[i - 1].tokens <= budget:
            budget -= pieces[i - 1].tokens
            i -= 1
        if not pieces[end - 1].sentence_end:
            return i  # cut inside a sentence: the words before the cut, whatever they are
        # Cut at a sentence end: repeat whole sentences only, so that no chunk (and no quote
        # taken from one) starts in the middle of a sentence; none when the last is too long.
        for j in range(i, end):
            if j == start or pieces[j - 1].sentence_end:
                return j
        return end


def chunk_blocks(
    blocks: Iterable[Block],
    counter: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunk ``blocks`` once; a ``Chunker`` reuses its token-count cache across documents."""
    return Chunker(counter, max_tokens=max_tokens, overlap_tokens=overlap_tokens).chunk(blocks)


def _sections(blocks: Iterable[Block]) -> Iterable[tuple[tuple[str, ...], list[Block]]]:
    path: tuple[str, ...] | None = None
    section: list[Block] = []
    for block in blocks:
        if block.kind is BlockKind.HEADING:
            continue
        if block.heading_path != path:
            if section and path is not None:
                yield path, section
            path, section = block.heading_path, []
        section.append(block)
    if section and path is not None:
        yield path, section


def _render(block: Block) -> str:
    if block.kind is BlockKind.LIST_ITEM:
        return "- " + block.text
    return block.text


def _words(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _WORD.finditer(text)]


def _tokens(pieces: list[_Piece], start: int, end: int) -> int:
    return sum(piece.tokens for piece in pieces[start:end])


def _join(pieces: list[_Piece]) -> str:
    return "".join((piece.sep if i else "") + piece.word for i, piece in enumerate(pieces))
