"""DOCX through python-docx: heading styles give headings, numbered or list-styled paragraphs give
list items, tables give rows. The zip is checked for bomb-like sizes before python-docx opens it.

Only python-docx's public API: a paragraph's numbering level is read from its XML element
(``ParagraphFormat.element``, plain lxml calls over the WordprocessingML schema), and a merged
cell is kept once by its ``grid_span``.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from docx import Document
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from retrieval.errors import UnparseableDocument
from retrieval.parsing._blocks import Block, BlockSink

MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 10_000
_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def parse_docx(data: bytes) -> list[Block]:
    _check_zip(data)
    try:
        document = Document(io.BytesIO(data))
        sink = BlockSink()
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                _paragraph(sink, item)
            elif isinstance(item, Table):
                _table(sink, item)
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UnparseableDocument("The DOCX file could not be read.") from exc
    return sink.blocks


def _check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnparseableDocument("The DOCX file is not a valid zip archive.") from exc
    if len(infos) > MAX_ENTRIES or sum(i.file_size for i in infos) > MAX_UNCOMPRESSED_BYTES:
        raise UnparseableDocument("The DOCX file expands beyond the size limit.")
    if "word/document.xml" not in {i.filename for i in infos}:
        raise UnparseableDocument("The file is a zip archive but not a Word document.")


def _paragraph(sink: BlockSink, paragraph: Paragraph) -> None:
    text = paragraph.text
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = _HEADING_STYLE.match(style.strip())
    if heading:
        sink.heading(max(int(heading.group(1)), 1), text)
        return
    if style.strip().lower() == "title":
        sink.heading(1, text)
        return
    numbering = _list_level(paragraph)
    if numbering is not None or style.lower().startswith("list"):
        sink.list_item(text, (numbering or 0) + 1)
        return
    sink.paragraph(text)


def _list_level(paragraph: Paragraph) -> int | None:
    """The paragraph's direct numbering level (``w:numPr/w:ilvl``), 0 when numbered without a
    level, None when not numbered."""
    element: Any = paragraph.paragraph_format.element  # the paragraph's ``w:p``
    numbering = element.find(f"{_W}pPr/{_W}numPr")
    if numbering is None:
        return None
    level = numbering.find(f"{_W}ilvl")
    value = "" if level is None else str(level.get(f"{_W}val", ""))
    return int(value) if value.isdigit() else 0


def _table(sink: BlockSink, table: Table) -> None:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        row_cells = row.cells
        index = 0
        while index < len(row_cells):
            # A merged cell is returned once per grid column it spans: keep it once.
            cell = row_cells[index]
            cells.append(cell.text)
            index += max(cell.grid_span, 1)
        rows.append(cells)
    sink.table(rows)
