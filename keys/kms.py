"""The KMS port: what envelope encryption needs from a key-management service.

Adapters (``keys/adapters``) implement it for the local key file and for AWS KMS. They raise
``KeyAccessDenied`` when the key itself refuses (disabled, scheduled for deletion, deleted, access
revoked, wrong context) and ``KmsUnreachable`` when the service cannot be asked at all; the
services turn those into 503 ``tenant_key_unavailable`` / ``kms_unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Provider = Literal["local", "aws-kms"]


class KeyAccessDenied(Exception):
    """The KMS key exists (or existed) but may not be used: fail closed."""


class KmsUnreachable(Exception):
    """The KMS did not answer (network, endpoint, throttling)."""


class KeyInvalid(Exception):
    """A key reference that cannot be used at all (unknown id, malformed ARN)."""


@dataclass(frozen=True, slots=True)
class KeyRef:
    """Which customer (or platform) key wraps a tenant's data keys."""

    provider: Provider
    key_id: str
    aws_region: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    # The tenant whose key this is: credentials obtained for one tenant serve no other.
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class DataKey:
    plaintext: bytes
    wrapped: bytes


Context = dict[str, str]


class KmsPort(Protocol):
    async def generate_data_key(self, key: KeyRef, context: Context) -> DataKey: ...

    async def encrypt(self, key: KeyRef, plaintext: bytes, context: Context) -> bytes: ...

    async def decrypt(self, key: KeyRef, wrapped: bytes, context: Context) -> bytes: ...

    async def re_encrypt(
        self, source: KeyRef, wrapped: bytes, context: Context, destination: KeyRef
    ) -> bytes: ...

    async def create_key(self, *, description: str, owner: str | None) -> KeyRef: ...

    async def destroy_key(self, key: KeyRef) -> None: ...
