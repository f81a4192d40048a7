"""The structural blocks every parser emits, and the heading-path bookkeeping they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

_SPACE = re.compile(r"\s+")
# Lines that open a list item in plain text and PDF text: bullets, or "1." / "a)" numbering.
LIST_MARKER = re.compile(
    r"^\s*(?:[-*+\u2022\u2023\u25aa\u25e6\u2043\u2219\u00b7]|\(?\w{1,3}[.)])\s+"
)


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit of a document, in reading order.

    ``heading_path`` is the chain of headings in effect at this block, outermost first; for a
    heading block it ends with the heading itself. ``level`` is the heading level (1 = top) for
    headings and the nesting depth (1 = top) for list items; 0 otherwise. A table keeps its cells
    in ``rows``; its ``text`` is one line per row with cells joined by `` | ``.
    """

    kind: BlockKind
    text: str
    heading_path: tuple[str, ...] = ()
    level: int = 0
    rows: tuple[tuple[str, ...], ...] = field(default=())


def squash(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to one space and trim."""
    return _SPACE.sub(" ", text).strip()


def table_text(rows: tuple[tuple[str, ...], ...]) -> str:
    return "\n".join(" | ".join(cells) for cells in rows)


class BlockSink:
    """Collects blocks and keeps the heading path in effect as headings arrive."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._stack: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def heading(self, level: int, text: str) -> None:
        text = squash(text)
        if not text:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self.blocks.append(Block(BlockKind.HEADING, text, self.path, level))

    def paragraph(self, text: str, *, keep_lines: bool = False) -> None:
        text = text.strip() if keep_lines else squash(text)
        if text:
            self.blocks.append(Block(BlockKind.PARAGRAPH, text, self.path))

    def list_item(self, text: str, level: int = 1) -> None:
        text = squash(text)
        if text:
            self.blocks.append(Block(BlockKind.LIST_ITEM, text, self.path, max(level, 1)))

    def table(self, rows: list[list[str]]) -> None:
        cleaned = tuple(
            tuple(squash(cell) for cell in row) for row in rows if any(c.strip() for c in row)
        )
        if cleaned:
            self.blocks.append(Block(BlockKind.TABLE, table_text(cleaned), self.path, rows=cleaned))
