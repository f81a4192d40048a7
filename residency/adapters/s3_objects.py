"""Objects in one region's S3 bucket (boto3). The bucket is created in the region it serves
(LocationConstraint), so objects never land in another region by default configuration.

A reply that is not S3's is the store being unreachable (``ObjectStoreUnreachable``, a 503 for
the caller), never an unhandled error: botocore raises parser errors of its own and of the XML
parser for a body it cannot read, and a write is only done when its reply carries the ETag S3
gives every stored object (an empty 200 from a proxy stored nothing). A read's body must be as
long as its Content-Length says (botocore checks); what the body holds is checked by the
caller, which opens it as an envelope (``residency.objects``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kernel.adapters.aws import UNPARSEABLE

T = TypeVar("T")
_CONFIG = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 3})


class ObjectStoreUnreachable(Exception):
    pass


class S3BlobStore:
    def __init__(self, bucket: str, *, aws_region: str, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.aws_region = aws_region
        self._client = boto3.client(
            "s3", region_name=aws_region, endpoint_url=endpoint_url, config=_CONFIG
        )

    async def _call(self, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return fn(self._client)
            except (ClientError, BotoCoreError, *UNPARSEABLE) as exc:
                raise ObjectStoreUnreachable(type(exc).__name__) from exc

        return await asyncio.to_thread(run)

    async def ensure_ready(self) -> None:
        def create(s3: Any) -> None:
            try:
                s3.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.aws_region != "us-east-1":  # the one region that refuses a constraint
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.aws_region}
            s3.create_bucket(**kwargs)

        await self._call(create)

    async def location(self) -> str:
        response = await self._call(lambda s3: s3.get_bucket_location(Bucket=self.bucket))
        location = response.get("LocationConstraint")
        if location is not None and not isinstance(location, str):
            raise ObjectStoreUnreachable("malformed GetBucketLocation reply")
        return location or "us-east-1"

    async def put(self, key: str, data: bytes) -> None:
        reply = await self._call(lambda s3: s3.put_object(Bucket=self.bucket, Key=key, Body=data))
        if not reply.get("ETag"):
            raise ObjectStoreUnreachable("PutObject reply without an ETag")

    async def get(self, key: str) -> bytes | None:
        def fetch(s3: Any) -> bytes | None:
            try:
                return bytes(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

        return await self._call(fetch)

    async def delete(self, key: str) -> None:
        await self._call(lambda s3: s3.delete_object(Bucket=self.bucket, Key=key))
