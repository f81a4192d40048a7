"""Retrieval failures: bad ACLs and searches are input errors; a misrouted store is an outage."""

from __future__ import annotations

from app.errors import InvalidInput, ServiceUnavailable


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
