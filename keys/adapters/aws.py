"""AWS KMS through boto3: the customer's key (BYOK) or a per-tenant platform key, in the
tenant's region only.

Every call carries an EncryptionContext (tenant id, purpose, DEK version), so a wrapped data key
is useless outside the row it belongs to. With a ``role_arn`` the adapter assumes that role in
the customer's account (with their external id) and calls KMS with the temporary credentials.
boto3 is synchronous: calls run in a worker thread so they never block the event loop.

Every reply is checked for the fields its call must return, with the types and sizes they must
have (a data key is 32 bytes, ciphertext is never empty, a key has an ARN). botocore does not:
a body cut short, an empty 200 or a proxy's HTML page parse into a dict without those fields
(or raise a parser error), and the base64 of a blob is decoded leniently. Any such reply is
``KmsUnreachable`` (the caller answers 503 and may retry), never an unhandled error.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from kernel.adapters.aws import UNPARSEABLE
from keys.kms import Context, DataKey, KeyAccessDenied, KeyInvalid, KeyRef, KmsUnreachable

T = TypeVar("T")

_DENIED = {
    "DisabledException",
    "NotFoundException",
    "KMSInvalidStateException",
    "AccessDeniedException",
    "AccessDenied",
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "KeyUnavailableException",
    "InvalidKeyUsageException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
}
_INVALID = {"ValidationException", "InvalidArnException"}
_BOTO_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2})
DATA_KEY_BYTES = 32  # KeySpec AES_256


class MalformedReply(Exception):
    """A KMS or STS reply without a field its call must return (or with one of the wrong
    type or size)."""


def blob(reply: Mapping[str, Any], field: str, size: int | None = None) -> bytes:
    """``reply[field]`` as the non-empty bytes (of ``size`` bytes, if given) it must be."""
    value = reply.get(field)
    if not isinstance(value, bytes | bytearray) or not value:
        raise MalformedReply(field)
    if size is not None and len(value) != size:
        raise MalformedReply(f"{field} of {len(value)} bytes")
    return bytes(value)


def text(reply: Mapping[str, Any], *path: str) -> str:
    """The non-empty string at ``path`` in ``reply``."""
    value: Any = reply
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value:
        raise MalformedReply(".".join(path))
    return value


def arn_region(key_id: str) -> str | None:
    """The region written in a key ARN (``arn:aws:kms:REGION:ACCOUNT:key/ID``), if it is one."""
    parts = key_id.split(":")
    return parts[3] if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "kms" else None


class AwsKms:
    def __init__(self, *, default_region: str | None, endpoint_url: str | None = None) -> None:
        self.default_region = default_region
        self.endpoint_url = endpoint_url
        # Keyed by tenant, region, role and external id: a client holding credentials of a role
        # assumed for one tenant is never handed to another tenant that names the same role
        # (with another external id, or none), which must assume it itself and may be refused.
        self._clients: dict[tuple[str | None, str, str | None, str | None], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _client(self, key: KeyRef) -> Any:
        region = key.aws_region or self.default_region
        if not region:
            raise KeyInvalid("no AWS region for this key")
        cache_key = (key.tenant, region, key.role_arn, key.external_id)
        with self._lock:
            cached = self._clients.get(cache_key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        credentials: dict[str, str] = {}
        expires = float("inf")
        if key.role_arn:
            sts = boto3.client(
                "sts", region_name=region, endpoint_url=self.endpoint_url, config=_BOTO_CONFIG
            )
            assume: dict[str, Any] = {
                "RoleArn": key.role_arn,
                "RoleSessionName": "bulwark-envelope",
            }
            if key.external_id:
                assume["ExternalId"] = key.external_id
            reply = sts.assume_role(**assume)
            credentials = {
                "aws_access_key_id": text(reply, "Credentials", "AccessKeyId"),
                "aws_secret_access_key": text(reply, "Credentials", "SecretAccessKey"),
                "aws_session_token": text(reply, "Credentials", "SessionToken"),
            }
            expires = time.monotonic() + 15 * 60
        client = boto3.client(
            "kms",
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=_BOTO_CONFIG,
            **credentials,
        )
        with self._lock:
            self._clients[cache_key] = (expires, client)
        return client

    async def _call(self, key: KeyRef, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return fn(self._client(key))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _DENIED:
                    raise KeyAccessDenied(code) from None
                if code in _INVALID:
                    raise KeyInvalid(code) from None
                raise KmsUnreachable(code or "client error") from exc
            except (EndpointConnectionError, BotoCoreError) as exc:
                raise KmsUnreachable(type(exc).__name__) from None
            except (MalformedReply, *UNPARSEABLE) as exc:
                # A reply cut short by a proxy or a faulty endpoint: KMS did not answer, which
                # is a 503, not a 500.
                raise KmsUnreachable(f"malformed response ({type(exc).__name__})") from None

        return await asyncio.to_thread(run)

    async def generate_data_key(self, key: KeyRef, context: Context) -> DataKey:
        def call(kms: Any) -> DataKey:
            reply = kms.generate_data_key(
                KeyId=key.key_id, KeySpec="AES_256", EncryptionContext=context
            )
            return DataKey(
                plaintext=blob(reply, "Plaintext", DATA_KEY_BYTES),
                wrapped=blob(reply, "CiphertextBlob"),
            )

        return await self._call(key, call)

    async def encrypt(self, key: KeyRef, plaintext: bytes, context: Context) -> bytes:
        return await self._call(
            key,
            lambda kms: blob(
                kms.encrypt(KeyId=key.key_id, Plaintext=plaintext, EncryptionContext=context),
                "CiphertextBlob",
            ),
        )

    async def decrypt(self, key: KeyRef, wrapped: bytes, context: Context) -> bytes:
        return await self._call(
            key,
            lambda kms: blob(
                kms.decrypt(KeyId=key.key_id, CiphertextBlob=wrapped, EncryptionContext=context),
                "Plaintext",
            ),
        )

    async def re_encrypt(
        self, source: KeyRef, wrapped: bytes, context: Context, destination: KeyRef
    ) -> bytes:
        if (source.tenant, source.role_arn, source.external_id, source.aws_region) != (
            destination.tenant,
            destination.role_arn,
            destination.external_id,
            destination.aws_region,
        ):
            # Different accounts or credentials: unwrap with one, wrap with the other.
            plaintext = await self.decrypt(source, wrapped, context)
            return await self.encrypt(destination, plaintext, context)
        return await self._call(
            destination,
            lambda kms: blob(
                kms.re_encrypt(
                    CiphertextBlob=wrapped,
                    SourceKeyId=source.key_id,
                    SourceEncryptionContext=context,
                    DestinationKeyId=destination.key_id,
                    DestinationEncryptionContext=context,
                ),
                "CiphertextBlob",
            ),
        )

    async def create_key(self, *, description: str, owner: str | None) -> KeyRef:
        probe = KeyRef(provider="aws-kms", key_id="", aws_region=self.default_region)
        tags = [{"TagKey": "bulwark:tenant", "TagValue": owner}] if owner else []
        arn = await self._call(
            probe,
            lambda kms: text(
                kms.create_key(
                    Description=description,
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    Tags=tags,
                ),
                "KeyMetadata",
                "Arn",
            ),
        )
        return KeyRef(provider="aws-kms", key_id=arn, aws_region=self.default_region)

    async def destroy_key(self, key: KeyRef) -> None:
        # The bare key id (the client is already in the key's account and region); moto, the
        # test peer, rejects an ARN here although AWS accepts both.
        bare_id = key.key_id.rsplit("/", 1)[-1] if arn_region(key.key_id) else key.key_id
        # The reply must name the key: an empty 200 from a proxy is no proof that it is shredded.
        await self._call(
            key,
            lambda kms: text(
                kms.schedule_key_deletion(KeyId=bare_id, PendingWindowInDays=7), "KeyId"
            ),
        )
