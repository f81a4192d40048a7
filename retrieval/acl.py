"""Document ACLs: the reference read policy, its payload encoding, and its compiled filter.

This module is the one place that decides who may read a chunk (docs/ARCHITECTURE.md, "Tenancy
and isolation"). It holds three views of the same rule, and the tests prove them equal:

* ``may_read`` — the reference policy, in plain Python, over a ``DocumentAcl``;
* ``acl_payload`` / ``chunk_payload`` — how an ACL is written into every chunk's vector payload;
* ``acl_filter`` — the rule compiled for one principal into ``FilterNode`` (a small boolean tree
  of payload conditions) that each vector-store adapter translates into its own filter model and
  sends *inside* the vector query. Nothing is ever filtered after the search in Python: a
  post-filter leaks through counts, timing and top-k starvation.

A principal may read a document when all of these hold:

1. the document belongs to the principal's tenant;
2. the document is visible to the whole tenant, or lists the principal's user id, or lists one of
   the principal's groups (a missing or empty ACL lists only its uploader: see ``owner``);
3. the document's classification (0..3) is at most the principal's clearance;
4. for every attribute key the document constrains, the principal holds at least one of the
   values the document lists for that key (a key listed with no values can never be satisfied).

Rule 4 inside a Qdrant filter: each chunk stores ``attr_keys`` (the keys its document constrains)
and ``attr_pairs`` (``"key=value"`` for every allowed value). For a principal holding keys ``K``
and pairs ``P`` the condition is

    NOT (attr_keys has a value outside K)                      -- every constrained key is in K
    AND for each k in K: (attr_keys does not contain k) OR (attr_pairs contains some k=v in P)

Proof sketch: the first clause says the document's keys are a subset of ``K``; given that, each
constrained key ``k`` is one of the ``K`` clauses, which then requires a shared pair ``k=v``.
Keys never contain ``=`` (validated here), so ``"k=v"`` splits uniquely at its first ``=`` and a
pair of one key can never pass for a pair of another, whatever the values contain.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from retrieval.errors import InvalidAcl, InvalidSearch

if TYPE_CHECKING:
    from kernel.tenancy import TenantContext

Visibility = Literal["restricted", "tenant"]
VISIBILITIES: tuple[Visibility, ...] = ("restricted", "tenant")
MAX_CLASSIFICATION = 3
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
METADATA_PREFIX = "meta"

Scalar: TypeAlias = str | int | bool


def _uuid_str(value: str | uuid.UUID, what: str) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        raise InvalidAcl(f"{what} {value!r} is not a UUID.") from None


@dataclass(frozen=True, slots=True)
class DocumentAcl:
    """Who may read a document. Immutable; build a new one to change access.

    ``owner`` is the uploader. A restricted ACL that names no user and no group is "no ACL": only
    its owner may read it (and nobody, when it has no owner). Use ``DocumentAcl.owner_only`` for
    a document uploaded without an ACL.
    """

    visibility: Visibility = "restricted"
    groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    classification: int = 0
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.visibility not in VISIBILITIES:
            raise InvalidAcl(f"Visibility must be one of {', '.join(VISIBILITIES)}.")
        if type(self.classification) is not int or not (
            0 <= self.classification <= MAX_CLASSIFICATION
        ):
            raise InvalidAcl(f"Classification must be an integer from 0 to {MAX_CLASSIFICATION}.")
        set_ = object.__setattr__
        set_(self, "groups", tuple(sorted({_uuid_str(g, "Group") for g in self.groups})))
        set_(self, "users", tuple(sorted({_uuid_str(u, "User") for u in self.users})))
        if self.owner is not None:
            set_(self, "owner", _uuid_str(self.owner, "Owner"))
        attributes: dict[str, tuple[str, ...]] = {}
        for key, values in self.attributes.items():
            if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
                raise InvalidAcl(f"Attribute key {key!r} must match {ATTRIBUTE_KEY.pattern}.")
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise InvalidAcl(f"Attribute {key!r} must list string values.")
            attributes[key] = tuple(sorted(set(values)))
        set_(self, "attributes", attributes)

    @classmethod
    def owner_only(cls, owner: str | uuid.UUID) -> DocumentAcl:
        """The ACL of a document uploaded without one: restricted to its uploader."""
        return cls(visibility="restricted", users=(str(owner),), owner=str(owner))

    @property
    def readers(self) -> tuple[str, ...]:
        """The user ids listed for reading; the owner alone when the ACL names nobody."""
        if self.visibility == "restricted" and not self.users and not self.groups and self.owner:
            return (self.owner,)
        return self.users


PII_ATTRIBUTE_PREFIX = "pii."
PII_CLEARED = "cleared"


def pii_attribute(entity_type: str) -> str:
    """The ABAC attribute a chunk holding ``entity_type`` requires (``pii.email_address``)."""
    return PII_ATTRIBUTE_PREFIX + entity_type.lower()


def with_pii(
    acl: DocumentAcl, entity_types: Iterable[str], classification: int | None
) -> DocumentAcl:
    """``acl`` tightened for content holding personal data of ``entity_types`` (DLP ingest
    ``tag``): a reader must also hold ``pii.<type> = cleared`` for every type found (rule 4), and
    the classification is raised to at least ``classification``. Only ever narrows access."""
    types = sorted(set(entity_types))
    if not types:
        return acl
    attributes = dict(acl.attributes)
    for entity_type in types:
        attributes[pii_attribute(entity_type)] = (PII_CLEARED,)
    return DocumentAcl(
        visibility=acl.visibility,
        groups=acl.groups,
        users=acl.users,
        classification=max(acl.classification, classification or 0),
        attributes=attributes,
        owner=acl.owner,
    )


def may_read(principal: TenantContext, document_acl: DocumentAcl, tenant_id: uuid.UUID) -> bool:
    """The reference policy: may ``principal`` read a document of ``tenant_id`` with this ACL?"""
    if principal.tenant_id != tenant_id:
        return False
    user = str(principal.user_id) if principal.user_id is not None else None
    groups = {str(g) for g in principal.group_ids}
    listed = (
        document_acl.visibility == "tenant"
        or (user is not None and user in document_acl.readers)
        or bool(groups.intersection(document_acl.groups))
    )
    if not listed or document_acl.classification > principal.clearance:
        return False
    held = principal.attributes
    return all(
        any(value in held.get(key, ()) for value in allowed)
        for key, allowed in document_acl.attributes.items()
    )


def attribute_pair(key: str, value: str) -> str:
    return f"{key}={value}"


def acl_payload(acl: DocumentAcl) -> dict[str, Any]:
    """The ACL fields of a chunk payload (replaced wholesale by ``set_acl``)."""
    return {
        "visibility": acl.visibility,
        "acl_groups": list(acl.groups),
        "acl_users": list(acl.readers),
        "classification": acl.classification,
        "attr_keys": sorted(acl.attributes),
        "attr_pairs": sorted(
            attribute_pair(key, value) for key, values in acl.attributes.items() for value in values
        ),
        "owner": acl.owner,
    }


def chunk_payload(
    tenant_id: uuid.UUID,
    document_id: str,
    chunk_id: str,
    ordinal: int,
    acl: DocumentAcl,
    metadata: Mapping[str, Scalar | Sequence[Scalar]] | None = None,
    sealed: str | None = None,
) -> dict[str, Any]:
    """The full payload stored with one chunk's vectors. The chunk's text (and heading path)
    only ever as ``sealed``: a base64 envelope under the tenant's keys."""
    meta: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if not METADATA_KEY.match(key):
            raise InvalidSearch(f"Metadata key {key!r} must match {METADATA_KEY.pattern}.")
        meta[key] = value if isinstance(value, str | int | bool) else list(value)
    return {
        "tenant_id": str(tenant_id),
        "document_id": document_id,
        "chunk_id": chunk_id,
        "ordinal": ordinal,
        **acl_payload(acl),
        METADATA_PREFIX: meta,
        "sealed": sealed,
    }


# --- the compiled filter ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """The field (or one element of it, for a list) equals one of ``values``."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class HasValueOutside:
    """The list field holds at least one element that is not in ``values``."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IsEmpty:
    """The field is missing, null or an empty list."""

    key: str


@dataclass(frozen=True, slots=True)
class AtMost:
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: FilterNode


@dataclass(frozen=True, slots=True)
class Never:
    """Matches nothing (an empty allow-list). Stores answer it without querying."""


NEVER = Never()
FilterNode: TypeAlias = Match | HasValueOutside | IsEmpty | AtMost | And | Or | Not | Never
AclFilter: TypeAlias = FilterNode


def all_of(*nodes: FilterNode) -> FilterNode:
    if any(isinstance(node, Never) for node in nodes):
        return NEVER
    flat: list[FilterNode] = []
    for node in nodes:
        flat.extend(node.children if isinstance(node, And) else (node,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def any_of(*nodes: FilterNode) -> FilterNode:
    kept = [node for node in nodes if not isinstance(node, Never)]
    if not kept:
        return NEVER
    return kept[0] if len(kept) == 1 else Or(tuple(kept))


def match(key: str, values: Iterable[Scalar]) -> FilterNode:
    values = tuple(values)
    return Match(key, values) if values else NEVER


def tenant_scope(ctx: TenantContext) -> FilterNode:
    """Rule 1, alone: every store operation starts from it."""
    return Match("tenant_id", (str(ctx.tenant_id),))


def document_scope(ctx: TenantContext, document_id: str) -> FilterNode:
    return all_of(tenant_scope(ctx), Match("document_id", (document_id,)))


def acl_filter(principal: TenantContext) -> AclFilter:
    """Rules 1 to 4 compiled for one principal, to be sent inside the vector query."""
    user = [str(principal.user_id)] if principal.user_id is not None else []
    listed = any_of(
        Match("visibility", ("tenant",)),
        match("acl_users", user),
        match("acl_groups", sorted(str(g) for g in principal.group_ids)),
    )
    held = {
        key: sorted(values)
        for key, values in principal.attributes.items()
        if values and ATTRIBUTE_KEY.match(key)
    }
    if held:
        # Every key the document constrains is one the principal holds...
        attributes = all_of(
            Not(HasValueOutside("attr_keys", tuple(sorted(held)))),
            # ...and for each held key the document constrains, a value is shared.
            *(
                any_of(
                    Not(Match("attr_keys", (key,))),
                    Match("attr_pairs", tuple(attribute_pair(key, v) for v in values)),
                )
                for key, values in sorted(held.items())
            ),
        )
    else:
        attributes = IsEmpty("attr_keys")
    return all_of(
        tenant_scope(principal),
        listed,
        AtMost("classification", principal.clearance),
        attributes,
    )


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Caller filters. They are ANDed onto the ACL filter, so they can only narrow a search."""

    document_ids: Sequence[str] | None = None
    metadata: Mapping[str, Scalar | Sequence[Scalar]] = field(default_factory=dict)

    def compile(self) -> FilterNode:
        nodes: list[FilterNode] = []
        if self.document_ids is not None:
            nodes.append(match("document_id", sorted(set(self.document_ids))))
        for key, value in sorted(self.metadata.items()):
            if not METADATA_KEY.match(key):
                raise InvalidSearch(f"Metadata key {key!r} must match {METADATA_KEY.pattern}.")
            values = (value,) if isinstance(value, str | int | bool) else tuple(value)
            nodes.append(match(f"{METADATA_PREFIX}.{key}", values))
        return all_of(*nodes) if nodes else And(())


def search_filter(principal: TenantContext, filters: SearchFilters | None = None) -> FilterNode:
    """The whole filter of one search: the principal's ACL filter AND the caller's filters."""
    if filters is None:
        return acl_filter(principal)
    return all_of(acl_filter(principal), filters.compile())
