"""Tenant objects, sealed client-side with the tenant's data keys before they reach any store.

Object keys are ``<tenant id hex>/<kind>/<object id>``: no tenant names, titles or file names,
so a listing of the bucket or directory reveals nothing but opaque ids.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import structlog

from kernel.errors import NotFound, ServiceUnavailable
from kernel.settings import RegionSettings
from kernel.tenancy import TenantContext
from residency.adapters.local_objects import LocalBlobStore
from residency.adapters.s3_objects import ObjectStoreUnreachable, S3BlobStore

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
log = structlog.get_logger("bulwark.objects")


class BlobStore(Protocol):
    async def ensure_ready(self) -> None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...


class ObjectNotFound(NotFound):
    code = "object_not_found"
    title = "Object not found"

    def __init__(self) -> None:
        super().__init__("No such object in this tenant.")


class ObjectStoreUnavailable(ServiceUnavailable):
    code = "object_store_unavailable"
    title = "Object store unavailable"

    def __init__(self, region: str) -> None:
        super().__init__(f"The object store of region {region!r} did not answer.", region=region)


def blob_store_for(region: RegionSettings) -> BlobStore:
    location = region.object_store
    if location.startswith("s3://"):
        if not region.object_store_region:
            raise ValueError("an s3:// object store needs object_store_region")
        return S3BlobStore(
            location.removeprefix("s3://").strip("/"),
            aws_region=region.object_store_region,
            endpoint_url=region.object_store_endpoint_url,
        )
    return LocalBlobStore(Path(location))


class Sealer(Protocol):
    async def seal(self, kind: str, object_id: str, plaintext: bytes) -> bytes: ...

    async def open(self, kind: str, object_id: str, blob: bytes) -> bytes:
        """The plaintext of a blob ``seal`` made for this kind and id; ValueError for any
        other bytes (empty, cut short, altered, or sealed for another object)."""
        ...


class TenantObjects:
    """One tenant's objects in its region's store; everything goes through its keys."""

    def __init__(self, store: BlobStore, keys: Sealer, ctx: TenantContext) -> None:
        self.store = store
        self.keys = keys
        self.ctx = ctx

    def key(self, kind: str, object_id: str) -> str:
        if not (_SEGMENT.match(kind) and _SEGMENT.match(object_id)):
            raise ValueError("object kind and id must be short opaque identifiers")
        return f"{self.ctx.tenant_id.hex}/{kind}/{object_id}"

    async def put(self, kind: str, object_id: str, plaintext: bytes) -> str:
        key = self.key(kind, object_id)
        sealed = await self.keys.seal(kind, object_id, plaintext)
        try:
            await self.store.put(key, sealed)
        except ObjectStoreUnreachable:
            raise ObjectStoreUnavailable(self.ctx.region) from None
        return key

    async def get(self, kind: str, object_id: str) -> bytes:
        try:
            sealed = await self.store.get(self.key(kind, object_id))
        except ObjectStoreUnreachable:
            raise ObjectStoreUnavailable(self.ctx.region) from None
        if sealed is None:
            raise ObjectNotFound()
        try:
            return await self.keys.open(kind, object_id, sealed)
        except ValueError:
            # The store answered with bytes that are not the object put there (an empty or
            # truncated body, a proxy's page, another object's blob): it did not serve it.
            log.error("object_store_reply_rejected", region=self.ctx.region, kind=kind)
            raise ObjectStoreUnavailable(self.ctx.region) from None

    async def delete(self, kind: str, object_id: str) -> None:
        try:
            await self.store.delete(self.key(kind, object_id))
        except ObjectStoreUnreachable:
            raise ObjectStoreUnavailable(self.ctx.region) from None
