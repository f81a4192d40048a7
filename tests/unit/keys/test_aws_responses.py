"""A KMS answer cut short (a proxy or a faulty endpoint drops its body) is KMS unreachable —
a 503 for the caller — and never a KeyError turned into a 500."""

from __future__ import annotations

from typing import Any

import pytest

from keys.adapters.aws import AwsKms
from keys.kms import KeyRef, KmsUnreachable

KEY = KeyRef("aws-kms", "alias/customer", "eu-west-1")


class Truncated:
    """Answers every KMS call with a response that lacks its fields."""

    def __getattr__(self, name: str) -> Any:
        return lambda **_: {"ResponseMetadata": {"HTTPStatusCode": 200}}


@pytest.mark.parametrize("call", ["generate_data_key", "encrypt", "decrypt", "create_key"])
async def test_a_truncated_response_is_kms_unreachable(
    call: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = AwsKms(default_region="eu-west-1")
    monkeypatch.setattr(kms, "_client", lambda key: Truncated())
    with pytest.raises(KmsUnreachable):
        if call == "generate_data_key":
            await kms.generate_data_key(KEY, {"tenant_id": "t"})
        elif call == "encrypt":
            await kms.encrypt(KEY, b"x", {"tenant_id": "t"})
        elif call == "decrypt":
            await kms.decrypt(KEY, b"x", {"tenant_id": "t"})
        else:
            await kms.create_key(description="d", owner=None)
