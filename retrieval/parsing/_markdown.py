"""Markdown (CommonMark plus tables) through markdown-it-py's token stream."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

from retrieval.parsing._blocks import Block, BlockSink
from retrieval.parsing._html import add_html_fragment

_MD = MarkdownIt("commonmark", {"html": True}).enable("table")


def inline_text(token: Token) -> str:
    """The reader-visible text of an inline token: markup dropped, image alt text kept."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(inline_text(child) or child.content)
    return "".join(parts)


def parse_markdown(text: str) -> list[Block]:
    tokens = _MD.parse(text)
    sink = BlockSink()
    list_depth = 0
    in_item = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind == "heading_open":
            sink.heading(int(token.tag[1:]), inline_text(tokens[i + 1]))
            i += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "list_item_open":
            in_item += 1
        elif kind == "list_item_close":
            in_item -= 1
        elif kind == "inline" and tokens[i - 1].type == "paragraph_open":
            if in_item:
                sink.list_item(inline_text(token), list_depth)
            else:
                sink.paragraph(inline_text(token))
        elif kind in ("fence", "code_block"):
            sink.paragraph(token.content, keep_lines=True)
        elif kind == "html_block":
            add_html_fragment(sink, token.content)
        elif kind == "table_open":
            i = _table(tokens, i, sink)
            continue
        i += 1
    return sink.blocks


def _table(tokens: list[Token], start: int, sink: BlockSink) -> int:
    rows: list[list[str]] = []
    i = start + 1
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(inline_text(token))
        i += 1
    sink.table(rows)
    return i + 1
