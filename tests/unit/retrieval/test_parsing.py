"""Parsing of each supported format into structural blocks, and the two failure modes."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from retrieval.errors import UnparseableDocument, UnsupportedMediaType
from retrieval.parsing import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    TEXT,
    BlockKind,
    parse_document,
    resolve_media_type,
)


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose content stream draws each line with Helvetica, top to bottom."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def minimal_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Welcome to the handbook.")
    document.add_heading("Leave", level=2)
    document.add_paragraph("Annual leave is 25 days.")
    document.add_paragraph("Ask your manager", style="List Bullet")
    document.add_paragraph("Book it in the portal", style="List Number")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["Grade", "Days"], ["A", "25"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Travel", level=2)
    document.add_paragraph("Economy class only.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def summary(blocks: list) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(b.kind.value, b.text, b.heading_path) for b in blocks]


def test_plain_text_paragraphs_and_list_items() -> None:
    text = b"First line\ncontinues here.\n\n- apples\n- pears\n  wrapped\n\n1. one\n2. two\n"
    assert summary(parse_document(text, TEXT)) == [
        ("paragraph", "First line continues here.", ()),
        ("list_item", "apples", ()),
        ("list_item", "pears wrapped", ()),
        ("list_item", "one", ()),
        ("list_item", "two", ()),
    ]


def test_markdown_headings_lists_tables_and_code() -> None:
    source = (
        "# Guide\n\nIntro with **bold** and [a link](https://example.com).\n\n"
        "## Install\n\n- step one\n- step two\n  - nested step\n\n"
        "| Key | Value |\n|-----|-------|\n| a | 1 |\n\n"
        "```\nline 1\nline 2\n```\n\n# Appendix\n\nEnd.\n"
    )
    blocks = parse_document(source.encode(), MARKDOWN)
    assert summary(blocks) == [
        ("heading", "Guide", ("Guide",)),
        ("paragraph", "Intro with bold and a link.", ("Guide",)),
        ("heading", "Install", ("Guide", "Install")),
        ("list_item", "step one", ("Guide", "Install")),
        ("list_item", "step two", ("Guide", "Install")),
        ("list_item", "nested step", ("Guide", "Install")),
        ("table", "Key | Value\na | 1", ("Guide", "Install")),
        ("paragraph", "line 1\nline 2", ("Guide", "Install")),
        ("heading", "Appendix", ("Appendix",)),
        ("paragraph", "End.", ("Appendix",)),
    ]
    assert [b.level for b in blocks if b.kind is BlockKind.LIST_ITEM] == [1, 1, 2]
    table = next(b for b in blocks if b.kind is BlockKind.TABLE)
    assert table.rows == (("Key", "Value"), ("a", "1"))


def test_html_keeps_structure_and_drops_scripts_and_styles() -> None:
    page = b"""<!DOCTYPE html><html><head><title>ignored</title>
    <style>body { color: red }</style><script>var secret = 1;</script></head>
    <body><nav>Home</nav><h1>Policies</h1>
    <div>Loose <b>bold</b> text<p>A paragraph &amp; more.</p><script>track()</script></div>
    <ul><li>One<ul><li>Nested</li></ul></li><li><p>Two</p></li></ul>
    <h2>Rates</h2><table><tr><th>Tier</th><th>Price</th></tr><tr><td>Gold</td><td>10</td></tr>
    </table><noscript>enable js</noscript></body></html>"""
    blocks = parse_document(page, "text/html; charset=utf-8")
    assert summary(blocks) == [
        ("paragraph", "Home", ()),
        ("heading", "Policies", ("Policies",)),
        ("paragraph", "Loose bold text", ("Policies",)),
        ("paragraph", "A paragraph & more.", ("Policies",)),
        ("list_item", "One", ("Policies",)),
        ("list_item", "Nested", ("Policies",)),
        ("list_item", "Two", ("Policies",)),
        ("heading", "Rates", ("Policies", "Rates")),
        ("table", "Tier | Price\nGold | 10", ("Policies", "Rates")),
    ]
    everything = " ".join(b.text for b in blocks)
    for hidden in ("secret", "track", "color", "ignored", "enable js"):
        assert hidden not in everything


def test_pdf_text_lists_and_outline_headings() -> None:
    data = minimal_pdf(["Quarterly report for the board.", "- revenue up", "- costs down"])
    blocks = parse_document(data, PDF)
    assert summary(blocks) == [
        ("paragraph", "Quarterly report for the board.", ()),
        ("list_item", "revenue up", ()),
        ("list_item", "costs down", ()),
    ]
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.add_outline_item(title="Summary", page_number=0)
    buffer = io.BytesIO()
    writer.write(buffer)
    with_outline = parse_document(buffer.getvalue(), PDF)
    assert with_outline[0].kind is BlockKind.HEADING
    assert with_outline[0].text == "Summary"
    assert with_outline[1].heading_path == ("Summary",)


def test_docx_headings_lists_and_tables() -> None:
    blocks = parse_document(minimal_docx(), DOCX)
    assert summary(blocks) == [
        ("heading", "Handbook", ("Handbook",)),
        ("paragraph", "Welcome to the handbook.", ("Handbook",)),
        ("heading", "Leave", ("Handbook", "Leave")),
        ("paragraph", "Annual leave is 25 days.", ("Handbook", "Leave")),
        ("list_item", "Ask your manager", ("Handbook", "Leave")),
        ("list_item", "Book it in the portal", ("Handbook", "Leave")),
        ("table", "Grade | Days\nA | 25", ("Handbook", "Leave")),
        ("heading", "Travel", ("Handbook", "Travel")),
        ("paragraph", "Economy class only.", ("Handbook", "Travel")),
    ]


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"%PDF-1.4 ...", None, PDF),
        (b"<!doctype html><p>x</p>", None, HTML),
        (b"# Title\n\ntext", "notes.md", MARKDOWN),
        (b"just words", None, TEXT),
    ],
)
def test_generic_media_type_is_sniffed(data: bytes, filename: str | None, expected: str) -> None:
    assert resolve_media_type(data, "application/octet-stream", filename)[0] == expected
    assert resolve_media_type(data, None, filename)[0] == expected


def test_sniffed_docx_parses_without_a_declared_type() -> None:
    assert parse_document(minimal_docx())[0].text == "Handbook"


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"{}", "application/json"),
    ],
)
def test_unsupported_types_are_refused(data: bytes, media_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_document(data, media_type)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"%PDF-1.4\nthis is not a pdf body", PDF),
        (b"not a pdf at all", PDF),
        (b"PK\x03\x04 truncated zip", DOCX),
        (b"plain text, not a zip", DOCX),
        (b"\x00\x01\x02binary", TEXT),
        (b"caf\xe9", "text/plain; charset=utf-8"),
    ],
)
def test_malformed_documents_are_unparseable(data: bytes, media_type: str) -> None:
    with pytest.raises(UnparseableDocument) as caught:
        parse_document(data, media_type)
    assert caught.value.status == 422


def test_zip_that_is_not_a_word_document_is_unparseable() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnparseableDocument):
        parse_document(buffer.getvalue(), DOCX)


def test_legacy_encodings_are_decoded() -> None:
    assert parse_document(b"caf\xe9 cr\xe8me", TEXT)[0].text == "café crème"
    assert parse_document("ünïcode".encode("utf-16"), TEXT)[0].text == "ünïcode"
    assert parse_document(b"\xef\xbb\xbfbom text", TEXT)[0].text == "bom text"


def numbered(document: docx.Document, text: str, level: int | None) -> None:
    """A paragraph with direct numbering (``w:numPr``) and no list style, as Word writes a list
    that was numbered by hand."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    paragraph = document.add_paragraph(text)
    numbering = OxmlElement("w:numPr")
    if level is not None:
        ilvl = OxmlElement("w:ilvl")
        ilvl.set(qn("w:val"), str(level))
        numbering.append(ilvl)
    num_id = OxmlElement("w:numId")
    num_id.set(qn("w:val"), "1")
    numbering.append(num_id)
    paragraph.paragraph_format.element.get_or_add_pPr().append(numbering)


def test_docx_direct_numbering_gives_nested_list_items_and_merged_cells_count_once() -> None:
    document = docx.Document()
    numbered(document, "Top item", 0)
    numbered(document, "Nested item", 2)
    numbered(document, "Numbered without a level", None)
    document.add_paragraph("Plain text")
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide"
    table.cell(0, 2).text = "Right"
    for c, value in enumerate(["a", "b", "c"]):
        table.cell(1, c).text = value
    table.cell(1, 2).merge(table.cell(2, 2))  # a vertical merge keeps one cell per grid column
    table.cell(2, 0).text = "d"
    table.cell(2, 1).text = "e"
    buffer = io.BytesIO()
    document.save(buffer)
    blocks = parse_document(buffer.getvalue(), DOCX)
    assert [(b.kind.value, b.text, b.level) for b in blocks[:4]] == [
        ("list_item", "Top item", 1),
        ("list_item", "Nested item", 3),
        ("list_item", "Numbered without a level", 1),
        ("paragraph", "Plain text", 0),
    ]
    assert blocks[4].rows == (("Wide", "Right"), ("a", "b", "c"), ("d", "e", "c"))
