"""A tenant's DLP policy: what to look for, and what to do with it in each direction.

Pure data and validation, no I/O. The stored form is the JSON of ``policy_json``; the default
(``DEFAULT_POLICY``) applies to a tenant that never set one. It fails closed but stays usable:
high-risk identifiers never reach a model or an index in clear, names and contact details in a
user's message are pseudonymized (the requester gets them back), and an answer may only repeat
personal data the asker gave or the cited sources hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from dlp.errors import InvalidDlpPolicy
from dlp.ports import CustomRecognizer

Direction = Literal["inbound", "outbound", "ingest"]
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound", "ingest")


class Action(StrEnum):
    ALLOW = "allow"  # detected and counted, left as is
    REDACT = "redact"  # <EMAIL_ADDRESS>
    MASK = "mask"  # ****@*******.com-style: all but the last four characters starred
    HASH = "hash"  # <EMAIL_ADDRESS:3f9a0c1b2d4e> keyed per tenant: equal values, equal tokens
    PSEUDONYMIZE = "pseudonymize"  # <PERSON_1>, restored for the requester only
    BLOCK = "block"  # the request is refused (422) naming the types, never the values
    TAG = "tag"  # ingest only: the chunk is indexed unchanged but needs PII clearance


ALLOWED_ACTIONS: dict[Direction, frozenset[Action]] = {
    "inbound": frozenset(Action) - {Action.TAG},
    # Pseudonyms exist only for what the requester sent; an answer's own data cannot be one.
    "outbound": frozenset(Action) - {Action.TAG, Action.PSEUDONYMIZE},
    # No requester at ingest: nothing to restore, nobody to refuse.
    "ingest": frozenset(Action) - {Action.PSEUDONYMIZE, Action.BLOCK},
}

ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")
MAX_PATTERN_LENGTH = 200
MAX_PATTERNS = 20
MAX_TERMS = 500
MAX_TERM_LENGTH = 100
MAX_HOST_LENGTH = 253
HOST = re.compile(
    r"^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# A quantified group that itself contains a quantifier: (a+)+, (\w*)*, (a|aa)+ ... the classic
# shapes of catastrophic backtracking. Refused outright.
_NESTED_QUANTIFIER = re.compile(
    r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d*,|\{\d{2,}\})"
)
_ALTERNATION_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d*,)")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\\k<")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BIG_REPEAT = re.compile(r"\{\s*[0-9]*\s*,?\s*[0-9]{4,}")


def check_pattern(pattern: str) -> str:
    """A tenant regex, accepted only if short, compilable and free of backtracking traps.

    Python's ``re`` has no match timeout, so the guard is structural: bounded length, no nested
    or alternated repetition, no backreferences or lookarounds. Linear-time patterns of the kind
    tenants need (``PRJ-[0-9]{4}``, ``ACME-[A-Z]{2}[0-9]{6}``) pass.
    """
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidDlpPolicy(f"A pattern must be 1 to {MAX_PATTERN_LENGTH} characters.")
    if _NESTED_QUANTIFIER.search(pattern) or _ALTERNATION_REPEAT.search(pattern):
        raise InvalidDlpPolicy("A pattern may not repeat a group that itself repeats.")
    if _BACKREFERENCE.search(pattern) or _LOOKAROUND.search(pattern):
        raise InvalidDlpPolicy("Patterns may not use backreferences or lookarounds.")
    if _BIG_REPEAT.search(pattern):
        raise InvalidDlpPolicy("Repetition counts in a pattern must be below 1000.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidDlpPolicy(f"A pattern does not compile: {exc.msg}.") from None
    except (OverflowError, RecursionError, ValueError):
        raise InvalidDlpPolicy("A pattern does not compile.") from None
    if compiled.match(""):
        raise InvalidDlpPolicy("A pattern may not match the empty string.")
    return pattern


@dataclass(frozen=True, slots=True)
class EntityRule:
    entity_type: str
    threshold: float = 0.5
    inbound: Action = Action.REDACT
    outbound: Action = Action.REDACT
    ingest: Action = Action.ALLOW

    def action(self, direction: Direction) -> Action:
        return {"inbound": self.inbound, "outbound": self.outbound, "ingest": self.ingest}[
            direction
        ]


@dataclass(frozen=True, slots=True)
class InjectionPolicy:
    # A flagged user message: refused (422), or answered without the flagged message.
    user_message: Literal["refuse", "strip"] = "refuse"
    # A flagged retrieved chunk: left out of the prompt, or wrapped as inert quoted data.
    chunks: Literal["quarantine", "wrap"] = "quarantine"
    # Hosts an answer may link to or embed images from ("*.example.com" covers subdomains).
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DlpPolicy:
    entities: tuple[EntityRule, ...]
    custom: tuple[CustomRecognizer, ...] = ()
    allow_list: tuple[str, ...] = ()
    # Ingest ``tag``: chunks with personal data get classification at least this (None: unchanged).
    tag_classification: int | None = None
    injection: InjectionPolicy = field(default_factory=InjectionPolicy)

    def rule(self, entity_type: str) -> EntityRule | None:
        for rule in self.entities:
            if rule.entity_type == entity_type:
                return rule
        return None

    def min_score(self) -> float:
        return min((rule.threshold for rule in self.entities), default=1.0)


def _rule(
    entity_type: str, threshold: float, inbound: str, outbound: str, ingest: str
) -> EntityRule:
    return EntityRule(entity_type, threshold, Action(inbound), Action(outbound), Action(ingest))


DEFAULT_POLICY = DlpPolicy(
    entities=(
        _rule("PERSON", 0.6, "pseudonymize", "redact", "allow"),
        _rule("EMAIL_ADDRESS", 0.5, "pseudonymize", "redact", "allow"),
        _rule("PHONE_NUMBER", 0.35, "pseudonymize", "redact", "allow"),
        _rule("CREDIT_CARD", 0.5, "redact", "redact", "redact"),
        _rule("IBAN_CODE", 0.5, "redact", "redact", "redact"),
        _rule("US_SSN", 0.5, "redact", "redact", "redact"),
        _rule("US_BANK_NUMBER", 0.5, "redact", "redact", "redact"),
        _rule("IP_ADDRESS", 0.5, "allow", "redact", "allow"),
    )
)


def validate(
    policy: DlpPolicy,
    supported: frozenset[str],
    *,
    compiles: Callable[[str], bool] | None = None,
    max_classification: int = 3,
) -> DlpPolicy:
    """Refuse (422) what would not work: unknown types, actions that make no sense in a
    direction, unsafe regexes, duplicate names."""
    for term in (*policy.allow_list, *(t for rule in policy.custom for t in rule.deny_list)):
        if not 1 <= len(term) <= MAX_TERM_LENGTH or not term.strip():
            raise InvalidDlpPolicy(f"Terms must be 1 to {MAX_TERM_LENGTH} visible characters.")
    custom_types = {rule.entity_type for rule in policy.custom}
    if len(custom_types) != len(policy.custom):
        raise InvalidDlpPolicy("Custom recognizer names must be unique.")
    for rule in policy.custom:
        if not ENTITY_NAME.match(rule.entity_type) or rule.entity_type in supported:
            raise InvalidDlpPolicy(
                f"Custom recognizer {rule.entity_type!r} needs an unused UPPER_CASE name."
            )
        if not rule.patterns and not rule.deny_list:
            raise InvalidDlpPolicy(f"Custom recognizer {rule.entity_type} needs patterns or terms.")
        for pattern in rule.patterns:
            check_pattern(pattern)
            if compiles is not None and not compiles(pattern):
                raise InvalidDlpPolicy("A pattern does not compile in the detector's engine.")
    seen: set[str] = set()
    for entity in policy.entities:
        if entity.entity_type in seen:
            raise InvalidDlpPolicy(f"Entity type {entity.entity_type} is listed twice.")
        seen.add(entity.entity_type)
        if entity.entity_type not in supported and entity.entity_type not in custom_types:
            raise InvalidDlpPolicy(f"Unknown entity type {entity.entity_type!r}.")
        for direction in DIRECTIONS:
            if entity.action(direction) not in ALLOWED_ACTIONS[direction]:
                raise InvalidDlpPolicy(
                    f"Action {entity.action(direction).value!r} is not available {direction}."
                )
    unused = custom_types - seen
    if unused:
        raise InvalidDlpPolicy(
            f"Custom recognizers {', '.join(sorted(unused))} need an entry in entities."
        )
    if policy.tag_classification is not None and not (
        0 <= policy.tag_classification <= max_classification
    ):
        raise InvalidDlpPolicy(f"tag_classification must be 0 to {max_classification}.")
    for host in policy.injection.allowed_hosts:
        if len(host) > MAX_HOST_LENGTH or not HOST.match(host):
            raise InvalidDlpPolicy(f"{host!r} is not a host name.")
    return policy


# -- stored form -------------------------------------------------------------------------------


def policy_json(policy: DlpPolicy) -> dict[str, Any]:
    return {
        "entities": [
            {
                "type": r.entity_type,
                "threshold": r.threshold,
                "inbound": r.inbound.value,
                "outbound": r.outbound.value,
                "ingest": r.ingest.value,
            }
            for r in policy.entities
        ],
        "custom": [
            {
                "type": c.entity_type,
                "patterns": list(c.patterns),
                "terms": list(c.deny_list),
                "score": c.score,
            }
            for c in policy.custom
        ],
        "allow_list": list(policy.allow_list),
        "tag_classification": policy.tag_classification,
        "injection": {
            "user_message": policy.injection.user_message,
            "chunks": policy.injection.chunks,
            "allowed_hosts": list(policy.injection.allowed_hosts),
        },
    }


def policy_from_json(data: Mapping[str, Any]) -> DlpPolicy:
    injection = data.get("injection") or {}
    return DlpPolicy(
        entities=tuple(
            EntityRule(
                e["type"],
                float(e["threshold"]),
                Action(e["inbound"]),
                Action(e["outbound"]),
                Action(e["ingest"]),
            )
            for e in data.get("entities", ())
        ),
        custom=tuple(
            CustomRecognizer(
                c["type"], tuple(c.get("patterns", ())), tuple(c.get("terms", ())), c["score"]
            )
            for c in data.get("custom", ())
        ),
        allow_list=tuple(data.get("allow_list", ())),
        tag_classification=data.get("tag_classification"),
        injection=InjectionPolicy(
            user_message=injection.get("user_message", "refuse"),
            chunks=injection.get("chunks", "quarantine"),
            allowed_hosts=tuple(injection.get("allowed_hosts", ())),
        ),
    )


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False
