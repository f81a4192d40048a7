"""Random tenants, principals and document ACLs for the retrieval tests, and a test-side
interpreter of the compiled filter tree with Qdrant's semantics (lists match on any element)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auth.context import system_context, user_context
from kernel.tenancy import TenantContext, TenantRoute
from retrieval.acl import (
    And,
    AtMost,
    DocumentAcl,
    FilterNode,
    HasValueOutside,
    IsEmpty,
    Match,
    Never,
    Not,
    Or,
)

ATTRIBUTE_KEYS = ("dept", "site", "project")
# Values with "=" and empty strings probe the "key=value" pair encoding.
ATTRIBUTE_VALUES = ("eng", "ops", "a=b", "", "=x", "project=eng")


def principal(
    route: TenantRoute,
    *,
    user_id: uuid.UUID | None,
    groups: frozenset[uuid.UUID] = frozenset(),
    clearance: int = 0,
    attributes: Mapping[str, frozenset[str]] | None = None,
) -> TenantContext:
    """A context as auth/ builds it: a member with these groups, clearance and attributes, or
    (no user) the system context, which has none of them."""
    if user_id is None:
        return system_context(route)
    return user_context(
        route,
        user_id=user_id,
        roles=["member"],
        group_ids=groups,
        auth_method="session",
        credential_id=None,
        clearance=clearance,
        attributes=dict(attributes or {}),
    )


def _field(payload: Mapping[str, Any], key: str) -> Any:
    value: Any = payload
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def evaluate(node: FilterNode, payload: Mapping[str, Any]) -> bool:
    """Qdrant's reading of a filter tree over one payload (test oracle only)."""
    if isinstance(node, Never):
        return False
    if isinstance(node, And):
        return all(evaluate(c, payload) for c in node.children)
    if isinstance(node, Or):
        return any(evaluate(c, payload) for c in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, payload)
    value = _field(payload, node.key)
    items = value if isinstance(value, list) else ([] if value is None else [value])
    if isinstance(node, Match):
        return any(item in node.values for item in items)
    if isinstance(node, HasValueOutside):
        return any(item not in node.values for item in items)
    if isinstance(node, IsEmpty):
        return not items
    if isinstance(node, AtMost):
        return bool(items) and items[0] <= node.value
    raise AssertionError(node)


@dataclass
class Document:
    tenant: TenantRoute
    document_id: str
    acl: DocumentAcl
    chunks: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    tenants: list[TenantRoute]
    principals: list[TenantContext]
    documents: list[Document]


def random_attributes(rng: random.Random, *, allow_empty_lists: bool) -> dict[str, list[str]]:
    keys = rng.sample(ATTRIBUTE_KEYS, rng.choice((0, 0, 1, 1, 2, 3)))
    low = 0 if allow_empty_lists else 1
    return {k: rng.sample(ATTRIBUTE_VALUES, rng.randint(low, 3)) for k in keys}


def random_world(
    seed: int, *, tenants: int = 2, users: int = 40, groups: int = 8, documents: int = 60
) -> World:
    rng = random.Random(seed)
    routes = [
        TenantRoute(uuid.UUID(int=rng.getrandbits(128)), f"t{i}", "eu", "active")
        for i in range(tenants)
    ]
    principals: list[TenantContext] = []
    docs: list[Document] = []
    for route in routes:
        group_ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(groups)]
        user_ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(users)]
        for user in user_ids:
            held = random_attributes(rng, allow_empty_lists=True)
            principals.append(
                principal(
                    route,
                    user_id=user,
                    groups=frozenset(rng.sample(group_ids, rng.randint(0, 3))),
                    clearance=rng.randint(0, 3),
                    attributes={k: frozenset(v) for k, v in held.items()},
                )
            )
        principals.append(principal(route, user_id=None))
        for n in range(documents):
            owner = rng.choice(user_ids)
            kind = rng.random()
            if kind < 0.15:
                acl = DocumentAcl.owner_only(owner)
            elif kind < 0.2:
                acl = DocumentAcl(owner=str(owner))  # an empty ACL: the owner only
            else:
                acl = DocumentAcl(
                    visibility=rng.choice(("restricted", "restricted", "tenant")),
                    groups=tuple(str(g) for g in rng.sample(group_ids, rng.randint(0, 2))),
                    users=tuple(str(u) for u in rng.sample(user_ids, rng.randint(0, 2))),
                    classification=rng.choice((0, 0, 1, 2, 3)),
                    attributes=random_attributes(rng, allow_empty_lists=True),
                    owner=str(owner) if rng.random() < 0.5 else None,
                )
            document_id = f"{route.slug}-doc-{n}"
            docs.append(
                Document(
                    route,
                    document_id,
                    acl,
                    [f"{document_id}#{i}" for i in range(rng.randint(1, 4))],
                    {"lang": rng.choice(("en", "fr")), "year": rng.choice((2024, 2025))},
                )
            )
    return World(routes, principals, docs)
