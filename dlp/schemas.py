"""The admin API's view of a DLP policy (``PUT/GET /v1/admin/dlp``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from dlp.policies import (
    ALLOWED_ACTIONS,
    HOST,
    MAX_HOST_LENGTH,
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    MAX_TERM_LENGTH,
    MAX_TERMS,
    Action,
    Direction,
)

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
# 1-100 characters, not all white space (as ``str.isspace`` has it).
Term = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_TERM_LENGTH,
        pattern=r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    ),
]
# Python regex of 1-200 characters; without nested or alternated repetition, backreferences or
# lookarounds, and compilable (checked by the service, 422: no JSON Schema says it).
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PATTERN_LENGTH)]
# A DNS name, optionally "*." for its subdomains.
Host = Annotated[str, msgspec.Meta(max_length=MAX_HOST_LENGTH, pattern=HOST.pattern)]


def _actions(direction: Direction, default: Action) -> dict[str, Any]:
    allowed = sorted(ALLOWED_ACTIONS[direction], key=list(Action).index)
    return {"type": "string", "enum": [a.value for a in allowed], "default": default.value}


class EntityRuleSpec(msgspec.Struct, forbid_unknown_fields=True):
    """What to do with one entity type, per direction. ``inbound``: the user's message (and
    search queries); ``outbound``: the model's answer; ``ingest``: documents being indexed."""

    # The actions each direction offers (the service refuses the others, 422).
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "properties": {
            "inbound": _actions("inbound", Action.REDACT),
            "outbound": _actions("outbound", Action.REDACT),
            "ingest": _actions("ingest", Action.ALLOW),
        }
    }

    type: EntityType
    threshold: Score = 0.5
    inbound: Action = Action.REDACT
    outbound: Action = Action.REDACT
    ingest: Action = Action.ALLOW


class CustomRecognizerSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A tenant's own entity type: regexes and/or deny-listed terms (project code names,
    internal account formats). List its name in ``entities`` to say what to do with it."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": [field], "properties": {field: {"minItems": 1}}}
            for field in ("patterns", "terms")
        ]
    }

    type: EntityType
    patterns: Annotated[list[Pattern], msgspec.Meta(max_length=MAX_PATTERNS)] = msgspec.field(
        default_factory=list
    )
    terms: Annotated[list[Term], msgspec.Meta(max_length=MAX_TERMS)] = msgspec.field(
        default_factory=list
    )
    score: Score = 0.9


class InjectionSpec(msgspec.Struct, forbid_unknown_fields=True):
    user_message: Literal["refuse", "strip"] = "refuse"
    chunks: Literal["quarantine", "wrap"] = "quarantine"
    allowed_hosts: Annotated[list[Host], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )


class DlpPolicyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    entities: Annotated[list[EntityRuleSpec], msgspec.Meta(max_length=60)]
    custom: Annotated[list[CustomRecognizerSpec], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    # Values never flagged (exact match), e.g. the company's own switchboard number.
    allow_list: Annotated[list[Term], msgspec.Meta(max_length=MAX_TERMS)] = msgspec.field(
        default_factory=list
    )
    # With ``ingest: tag``: chunks holding personal data get at least this classification.
    tag_classification: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
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
