"""Document parsing: bytes of a supported type in, structural blocks in reading order out.

Supported: plain text, Markdown, HTML, PDF and DOCX. Everything runs in process on pure-Python or
wheel-bundled libraries: no network, no external binaries. The declared media type is trusted when
it names a supported type; a missing or generic one (``application/octet-stream``) is sniffed from
the bytes and the file name. An unsupported type raises ``UnsupportedMediaType`` (415); bytes that
do not parse as their type raise ``UnparseableDocument`` (422).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from retrieval.errors import UnparseableDocument, UnsupportedMediaType
from retrieval.parsing._blocks import Block, BlockKind
from retrieval.parsing._docx import parse_docx
from retrieval.parsing._html import parse_html
from retrieval.parsing._markdown import parse_markdown
from retrieval.parsing._pdf import parse_pdf
from retrieval.parsing._text import parse_text

__all__ = [
    "DOCX",
    "HTML",
    "MARKDOWN",
    "PDF",
    "SUPPORTED_MEDIA_TYPES",
    "TEXT",
    "Block",
    "BlockKind",
    "parse_document",
    "resolve_media_type",
]

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED_MEDIA_TYPES = frozenset({TEXT, MARKDOWN, HTML, PDF, DOCX})

_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
}
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_EXTENSIONS = {
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".htm": HTML,
    ".html": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_.:-]+)", re.I)
# Control characters other than tab, newline, carriage return and form feed mean "binary".
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def parse_document(
    data: bytes, media_type: str | None = None, filename: str | None = None
) -> list[Block]:
    """Parse ``data`` into blocks; see the module docstring for how the type is decided."""
    kind, charset = resolve_media_type(data, media_type, filename)
    parsers: dict[str, Callable[[], list[Block]]] = {
        TEXT: lambda: parse_text(_decode(data, charset)),
        MARKDOWN: lambda: parse_markdown(_decode(data, charset)),
        HTML: lambda: parse_html(_decode(data, charset or _meta_charset(data))),
        PDF: lambda: parse_pdf(_expect(data, b"%PDF-", "PDF")),
        DOCX: lambda: parse_docx(_expect(data, b"PK\x03\x04", "DOCX")),
    }
    return parsers[kind]()


def resolve_media_type(
    data: bytes, media_type: str | None = None, filename: str | None = None
) -> tuple[str, str | None]:
    """The supported media type to parse ``data`` as, and the declared charset if any."""
    declared, charset = _split_media_type(media_type or "")
    declared = _ALIASES.get(declared, declared)
    if declared in SUPPORTED_MEDIA_TYPES:
        return declared, charset
    if declared not in _GENERIC:
        raise UnsupportedMediaType(f"Documents of type {declared!r} are not supported.")
    sniffed = _sniff(data, filename)
    if sniffed is None:
        raise UnsupportedMediaType("The document's type could not be recognised.")
    return sniffed, charset


def _split_media_type(value: str) -> tuple[str, str | None]:
    main, *params = value.split(";")
    charset = None
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "charset" and raw.strip():
            charset = raw.strip().strip("\"'")
    return main.strip().lower(), charset


def _sniff(data: bytes, filename: str | None) -> str | None:
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return DOCX if b"word/" in data[:65536] or _extension(filename) == DOCX else None
    head = data[:4096].lstrip(codecs.BOM_UTF8)
    if _HTML_START.match(head):
        return HTML
    by_name = _extension(filename)
    if by_name in (TEXT, MARKDOWN, HTML):
        return by_name
    if by_name is None and not _BINARY.search(data[:4096].decode("latin-1")):
        return TEXT
    return None


def _extension(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return _EXTENSIONS.get("." + filename.rsplit(".", 1)[1].lower())


def _meta_charset(data: bytes) -> str | None:
    found = _META_CHARSET.search(data[:4096])
    return found.group(1).decode("ascii") if found else None


def _decode(data: bytes, charset: str | None) -> str:
    """Declared charset, else a BOM, else UTF-8, else Windows-1252; never control bytes."""
    if charset:
        try:
            return data.decode(charset)
        except LookupError:
            pass
        except UnicodeDecodeError as exc:
            raise UnparseableDocument(f"The document is not valid {charset}.") from exc
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _text_or_fail(data.decode("utf-16"))
        except UnicodeDecodeError as exc:
            raise UnparseableDocument("The document is not valid UTF-16.") from exc
    try:
        return _text_or_fail(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    try:
        return _text_or_fail(data.decode("cp1252"))
    except UnicodeDecodeError as exc:
        raise UnparseableDocument("The document's text encoding is not recognised.") from exc


def _text_or_fail(text: str) -> str:
    if _BINARY.search(text):
        raise UnparseableDocument("The document contains binary data where text was expected.")
    return text


def _expect(data: bytes, magic: bytes, name: str) -> bytes:
    if not data.startswith(magic):
        raise UnparseableDocument(f"The document is not a valid {name} file.")
    return data
