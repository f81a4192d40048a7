"""The one translation of ``retrieval.acl.FilterNode`` into a Qdrant-shaped filter model.

qdrant-client and qdrant-edge-py share Qdrant's filter semantics (must / should / must_not, match
on any element of a list, ``except``, ``is_empty``, ranges) but not their Python classes. The walk
over the tree, and every decision about how a node maps to Qdrant's semantics, lives here; each
adapter supplies only a ``FilterModel`` of constructors for its library's classes.
"""

from __future__ import annotations

from typing import Any, Protocol

from retrieval.acl import (
    And,
    AtMost,
    FilterNode,
    HasValueOutside,
    IsEmpty,
    Match,
    Never,
    Not,
    Or,
    Scalar,
)


class FilterModel(Protocol):
    """Constructors of one library's filter classes."""

    def match_value(self, key: str, value: Scalar) -> Any: ...

    def match_any(self, key: str, values: list[str] | list[int]) -> Any: ...

    def match_except(self, key: str, values: list[str]) -> Any: ...

    def is_empty(self, key: str) -> Any: ...

    def at_most(self, key: str, value: int) -> Any: ...

    def filter(self, must: list[Any], should: list[Any], must_not: list[Any]) -> Any: ...


def to_filter(node: FilterNode, model: FilterModel) -> Any:
    """Translate a tree into one top-level filter object of ``model``'s library."""
    if isinstance(node, Never):
        # Stores answer NEVER without a query; reaching here is a bug, and failing is safe.
        raise ValueError("an empty allow-list cannot be sent as a filter")
    if isinstance(node, And):
        must, must_not = [], []
        for child in node.children:
            if isinstance(child, Not):
                must_not.append(_condition(child.child, model))
            else:
                must.append(_condition(child, model))
        return model.filter(must, [], must_not)
    if isinstance(node, Or):
        return model.filter([], [_condition(c, model) for c in node.children], [])
    if isinstance(node, Not):
        return model.filter([], [], [_condition(node.child, model)])
    return model.filter([_condition(node, model)], [], [])


def _condition(node: FilterNode, model: FilterModel) -> Any:
    if isinstance(node, Match):
        return _match(node, model)
    if isinstance(node, HasValueOutside):
        if not node.values:
            # ``except []`` would be "has any value": say exactly that, without an empty list.
            return to_filter(Not(IsEmpty(node.key)), model)
        return model.match_except(node.key, list(node.values))
    if isinstance(node, IsEmpty):
        return model.is_empty(node.key)
    if isinstance(node, AtMost):
        return model.at_most(node.key, node.value)
    return to_filter(node, model)


def _match(node: Match, model: FilterModel) -> Any:
    values = node.values
    if len(values) == 1:
        return model.match_value(node.key, values[0])
    if all(isinstance(v, str) for v in values):
        return model.match_any(node.key, [str(v) for v in values])
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return model.match_any(node.key, [int(v) for v in values])
    # Mixed or boolean lists: Qdrant's ``any`` takes one type only.
    return model.filter([], [model.match_value(node.key, v) for v in values], [])
