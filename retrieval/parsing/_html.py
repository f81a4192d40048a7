"""HTML through selectolax (lexbor): scripts, styles and other non-content elements are dropped.

Block elements end the paragraph being collected; inline elements join it. Lists become list items
with their nesting depth, tables become rows of cells, ``pre`` keeps its line breaks.
"""

from __future__ import annotations

from collections.abc import Callable

from selectolax.lexbor import LexborHTMLParser, LexborNode

from retrieval.parsing._blocks import Block, BlockSink

# Never reader-visible content (or, for head, metadata that we do not index).
_DROP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "head",
        "title",
        "meta",
        "link",
        "svg",
        "math",
        "iframe",
        "object",
        "embed",
        "canvas",
        "video",
        "audio",
        "select",
        "option",
        "button",
        "input",
        "textarea",
    }
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {
        "html",
        "body",
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "nav",
        "aside",
        "blockquote",
        "address",
        "figure",
        "figcaption",
        "details",
        "summary",
        "form",
        "fieldset",
        "legend",
        "dl",
        "dt",
        "dd",
        "hr",
        "center",
        "caption",
    }
)

Emit = Callable[[str], None]


def parse_html(text: str) -> list[Block]:
    sink = BlockSink()
    add_html_fragment(sink, text)
    return sink.blocks


def add_html_fragment(sink: BlockSink, text: str) -> None:
    tree = LexborHTMLParser(text)
    root = tree.body
    if root is None:
        return
    _Walker(sink).run(root)


def inline_text(node: LexborNode) -> str:
    parts: list[str] = []
    for child in node.iter(include_text=True):
        tag = child.tag or ""
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag == "br" or tag in ("td", "th"):
            parts.append(" ")
        elif tag in _DROP or tag.startswith("-"):
            continue
        elif tag in _BLOCKS or tag in ("li", "tr", "p"):
            parts.append(" " + inline_text(child) + " ")
        else:
            parts.append(inline_text(child))
    return "".join(parts)


class _Walker:
    def __init__(self, sink: BlockSink) -> None:
        self.sink = sink
        self.buffer: list[str] = []
        self.depth = 0

    def run(self, root: LexborNode) -> None:
        self.walk(root, self.sink.paragraph)
        self.flush(self.sink.paragraph)

    def flush(self, emit: Emit) -> None:
        if self.buffer:
            text, self.buffer = "".join(self.buffer), []
            emit(text)

    def walk(self, node: LexborNode, emit: Emit) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag or ""
            if tag == "-text":
                self.buffer.append(child.text_content or "")
            elif tag in _DROP or tag.startswith("-"):
                continue
            elif tag == "br":
                self.buffer.append(" ")
            elif tag in _HEADINGS:
                self.flush(emit)
                self.sink.heading(int(tag[1]), inline_text(child))
            elif tag == "pre":
                self.flush(emit)
                self.sink.paragraph(child.text(deep=True), keep_lines=True)
            elif tag == "table":
                self.flush(emit)
                self.table(child)
            elif tag in ("ul", "ol", "menu"):
                self.flush(emit)
                self.list(child, emit)
            elif tag == "li":
                self.flush(emit)
                self.item(child)
            elif tag in _BLOCKS:
                self.flush(emit)
                self.walk(child, emit)
                self.flush(emit)
            else:
                self.walk(child, emit)

    def list(self, node: LexborNode, emit: Emit) -> None:
        self.depth += 1
        try:
            for child in node.iter(include_text=False):
                if child.tag == "li":
                    self.item(child)
                elif child.tag not in _DROP:
                    self.walk(child, emit)
                    self.flush(emit)
        finally:
            self.depth -= 1

    def item(self, node: LexborNode) -> None:
        depth = max(self.depth, 1)

        def emit(text: str) -> None:
            self.sink.list_item(text, depth)

        self.walk(node, emit)
        self.flush(emit)

    def table(self, node: LexborNode) -> None:
        rows: list[list[str]] = []
        for row in node.css("tr"):
            cells = [
                inline_text(cell)
                for cell in row.iter(include_text=False)
                if cell.tag in ("td", "th")
            ]
            rows.append(cells)
        self.sink.table(rows)
