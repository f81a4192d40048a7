"""A tenant's DLP policy body, as its admin sends it."""

from __future__ import annotations

from typing import Any


def policy(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entities": [
            {"type": "PERSON", "threshold": 0.6, "inbound": "pseudonymize", "ingest": "allow"},
            {"type": "EMAIL_ADDRESS", "inbound": "pseudonymize"},
            {"type": "CREDIT_CARD", "inbound": "block", "ingest": "redact"},
            {"type": "US_SSN", "inbound": "redact", "ingest": "redact"},
        ]
    }
    body.update(overrides)
    return body
