"""PDF through pypdf's text extraction (pure Python; no poppler or other binaries).

PDF has no reliable structure in its text layer, so blank lines separate paragraphs, bulleted or
numbered lines are list items, and a page break ends a paragraph. The outline (bookmarks), when the
file has one, supplies headings: each outline entry starts a heading at the top of its page.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from retrieval.errors import UnparseableDocument
from retrieval.parsing._blocks import Block, BlockSink
from retrieval.parsing._text import add_lines

MAX_PAGES = 2000


def parse_pdf(data: bytes) -> list[Block]:
    # pypdf logs warnings about recoverable damage at WARNING; they are not ours to surface.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnparseableDocument("The PDF is encrypted with a password.")
        pages = reader.pages
        if len(pages) > MAX_PAGES:
            raise UnparseableDocument(f"The PDF has more than {MAX_PAGES} pages.")
        headings = _outline_by_page(reader)
        sink = BlockSink()
        for number, page in enumerate(pages):
            for level, title in headings.get(number, []):
                sink.heading(level, title)
            text = page.extract_text() or ""
            paragraph: list[str] = []
            for line in text.replace("\r\n", "\n").split("\n"):
                if line.strip():
                    paragraph.append(line)
                elif paragraph:
                    add_lines(sink, paragraph)
                    paragraph = []
            if paragraph:
                add_lines(sink, paragraph)
    except UnparseableDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UnparseableDocument("The PDF could not be read.") from exc
    return sink.blocks


def _outline_by_page(reader: PdfReader) -> dict[int, list[tuple[int, str]]]:
    found: dict[int, list[tuple[int, str]]] = {}

    def visit(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except (PyPdfError, ValueError, KeyError, TypeError, AttributeError):
                continue
            title = str(getattr(item, "title", "") or "")
            if page is not None and page >= 0 and title.strip():
                found.setdefault(page, []).append((level, title))

    try:
        visit(reader.outline, 1)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return found
