from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

KeyId = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, pattern=r"^[!-~]+$")]
AwsArn = Annotated[str, msgspec.Meta(min_length=20, max_length=2048, pattern=r"^arn:[!-~]+$")]
RegionCode = Annotated[
    str, msgspec.Meta(min_length=2, max_length=32, pattern=r"^[a-z0-9][a-z0-9-]*$")
]


class KmsConfigUpdate(msgspec.Struct, forbid_unknown_fields=True):
    provider: Literal["local", "aws-kms"]
    key_id: KeyId
    region: RegionCode
    role_arn: AwsArn | None = None
    external_id: (
        Annotated[
            str, msgspec.Meta(min_length=2, max_length=1224, pattern=r"^[A-Za-z0-9_+=,.@:/-]+$")
        ]
        | None
    ) = None


class KmsConfigRead(msgspec.Struct):
    provider: str
    key_id: str
    region: str
    role_arn: str | None
    managed: bool
    current_version: int
    versions: int
    updated_at: datetime


class KmsRotated(msgspec.Struct):
    config: KmsConfigRead
    rewrapped: int
