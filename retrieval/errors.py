"""Retrieval failures that a caller can act on; each maps to a 4xx through ``app.errors``."""

from __future__ import annotations

from app.errors import AppError


class UnsupportedMediaType(AppError):
    """The document's type (declared or sniffed) is not one Bulwark can ingest."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class UnparseableDocument(AppError):
    """The document claims a supported type but its bytes cannot be read as that type."""

    status = 422
    code = "unparseable_document"
    title = "Unparseable document"
