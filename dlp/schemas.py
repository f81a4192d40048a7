"""The admin API's view of a DLP policy (``PUT/GET /v1/admin/dlp``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from dlp.policies import Action

EntityType = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=40,
        pattern=r"^[A-Z][A-Z0-9_]+$",
        description="A built-in Presidio entity type, or a custom recognizer's name.",
    ),
]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# List items are checked by the service (422), not here: the OpenAPI document cannot express
# constraints on list items, and a schema-valid request must never be refused as malformed.
# Terms: 1-100 characters. Patterns: 1-200 characters of Python regex without nested repetition,
# backreferences or lookarounds. Hosts: a DNS name, optionally "*." for its subdomains.


class EntityRuleSpec(msgspec.Struct, forbid_unknown_fields=True):
    """What to do with one entity type, per direction. ``inbound``: the user's message (and
    search queries); ``outbound``: the model's answer; ``ingest``: documents being indexed."""

    type: EntityType
    threshold: Score = 0.5
    inbound: Action = Action.REDACT
    outbound: Action = Action.REDACT
    ingest: Action = Action.ALLOW


class CustomRecognizerSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A tenant's own entity type: regexes and/or deny-listed terms (project code names,
    internal account formats). List its name in ``entities`` to say what to do with it."""

    type: EntityType
    patterns: Annotated[list[str], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    terms: Annotated[list[str], msgspec.Meta(max_length=500)] = msgspec.field(default_factory=list)
    score: Score = 0.9


class InjectionSpec(msgspec.Struct, forbid_unknown_fields=True):
    user_message: Literal["refuse", "strip"] = "refuse"
    chunks: Literal["quarantine", "wrap"] = "quarantine"
    allowed_hosts: Annotated[list[str], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )


class DlpPolicyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    entities: Annotated[list[EntityRuleSpec], msgspec.Meta(max_length=60)]
    custom: Annotated[list[CustomRecognizerSpec], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    # Values never flagged (exact match), e.g. the company's own switchboard number.
    allow_list: Annotated[list[str], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list
    )
    # With ``ingest: tag``: chunks holding personal data get at least this classification.
    # (0-3, checked by the service.)
    tag_classification: int | None = None
    injection: InjectionSpec = msgspec.field(default_factory=InjectionSpec)


class DlpPolicyRead(msgspec.Struct):
    entities: list[EntityRuleSpec]
    custom: list[CustomRecognizerSpec]
    allow_list: list[str]
    tag_classification: int | None
    injection: InjectionSpec
    # The built-in entity types this deployment detects.
    supported_entities: list[str]
    # False: no policy was set, this is the default.
    configured: bool
    version: int
    updated_at: datetime | None
