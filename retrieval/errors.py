"""Retrieval failures: bad documents, ACLs and searches are input errors (4xx); a misrouted
vector store is an outage (503)."""

from __future__ import annotations

from kernel.errors import AppError, InvalidInput, ServiceUnavailable


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


class InvalidAcl(InvalidInput):
    code = "invalid_acl"
    title = "Invalid document ACL"


class InvalidSearch(InvalidInput):
    code = "invalid_search"
    title = "Invalid search"


class VectorStoreRegionMismatch(ServiceUnavailable):
    """A context of one region reached another region's vector store: a routing bug, fail closed."""

    code = "vector_store_region_mismatch"
    title = "Vector store of another region"

    def __init__(self, store_region: str, tenant_region: str) -> None:
        super().__init__(
            f"The vector store of region {store_region!r} does not serve region {tenant_region!r}.",
            region=tenant_region,
        )


class VectorStoreUnavailable(ServiceUnavailable):
    """The region's vector store cannot be opened or reached (e.g. an embedded Qdrant Edge shard
    held by another process: a separate worker needs a Qdrant server)."""

    code = "vector_store_unavailable"
    title = "Vector store unavailable"

    def __init__(self, region: str) -> None:
        super().__init__(f"The vector store of region {region!r} is unavailable.", region=region)
