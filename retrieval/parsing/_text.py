"""Plain text: blank lines separate paragraphs; bulleted or numbered lines are list items."""

from __future__ import annotations

import re

from retrieval.parsing._blocks import LIST_MARKER, Block, BlockSink

_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def parse_text(text: str) -> list[Block]:
    sink = BlockSink()
    for part in _BLANK_LINES.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in part.split("\n") if line.strip()]
        add_lines(sink, lines)
    return sink.blocks


def add_lines(sink: BlockSink, lines: list[str]) -> None:
    """Emit one paragraph per run of ordinary lines and one list item per marked line.

    A line that does not start with a marker continues the list item above it (a wrapped item).
    """
    paragraph: list[str] = []
    item: list[str] | None = None
    for line in lines:
        marker = LIST_MARKER.match(line)
        if marker:
            if paragraph:
                sink.paragraph(" ".join(paragraph))
                paragraph = []
            if item is not None:
                sink.list_item(" ".join(item))
            item = [line[marker.end() :]]
        elif item is not None:
            item.append(line)
        else:
            paragraph.append(line)
    if item is not None:
        sink.list_item(" ".join(item))
    if paragraph:
        sink.paragraph(" ".join(paragraph))
