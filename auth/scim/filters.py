"""SCIM filters (RFC 7644 §3.4.2.2) compiled to SQL conditions.

Parsing is scim2-models' (its grammar, its syntax tree and its attribute resolution); this module
only walks the tree. Each resource type gives a map of the attributes a column answers exactly
(``userName``, ``externalId``, ``meta.lastModified``, ``members.value``, ...). A filter made only
of those compiles to an exact condition: filtering, counting, sorting and paging then all happen
in the database. Anything else (``emails.value``, extension attributes, value selections such as
``emails[type eq "work"]``) compiles to a condition that is only *necessary* (a superset of the
matches, ``TRUE`` at worst); the caller then evaluates the filter itself on those candidates with
scim2-models' reference evaluator. Either way the statement is the tenant-scoped one of a
repository, so no filter reaches beyond the tenant.

The exact conditions follow the SCIM semantics, not SQL's: a comparison with a missing value is
false (``ne`` true), ``pr`` is false for an empty string, strings compare without case unless
the attribute is case-exact, and ``co``/``sw``/``ew`` treat ``%`` and ``_`` literally. (``gt`` and
friends on strings depend on the database collation, so those are evaluated in Python.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from scim2_models import Extension, SCIMException, ScimFilter
from scim2_models.path import (
    AttributeBinding,
    CompareOperator,
    Comparison,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
    coerce_value,
)
from sqlalchemy import and_, false, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from auth.scim.errors import from_scim_exception

Condition = ColumnElement[bool]
Kind = Literal["string", "boolean", "datetime", "id"]
AttributeKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Column:
    """A column holding an attribute's value.

    ``exact`` is False when the column is only a projection of the SCIM value (a user's
    ``display_name`` has a default where SCIM's ``displayName`` is unassigned): it then narrows
    the candidates for the positive comparisons, and the filter is re-checked on each of them.
    """

    expr: Any
    kind: Kind
    nullable: bool = True
    exact: bool = True


@dataclass(frozen=True, slots=True)
class Related:
    """A multi-valued reference held in another table (a group's members, a user's groups)."""

    contains: Callable[[uuid.UUID], Condition]
    any: Callable[[], Condition]


Attribute = Column | Related
AttributeMap = Mapping[AttributeKey, Attribute]


@dataclass(frozen=True, slots=True)
class Compiled:
    condition: Condition
    exact: bool


_EXACT_FALSE = (false(), True)
_SUPERSET = (true(), False)
_ORDERING = {
    CompareOperator.gt: "__gt__",
    CompareOperator.ge: "__ge__",
    CompareOperator.lt: "__lt__",
    CompareOperator.le: "__le__",
}


def attribute_key(binding: AttributeBinding) -> AttributeKey | None:
    if isinstance(binding.model, type) and issubclass(binding.model, Extension):
        return None
    return (binding.field_name, binding.sub_field_name)


def column_for(binding: AttributeBinding | None, attributes: AttributeMap) -> Column | None:
    """The exact column an attribute sorts on, if any."""
    key = attribute_key(binding) if binding is not None else None
    found = attributes.get(key) if key is not None else None
    return found if isinstance(found, Column) and found.exact else None


def compile_filter(scim_filter: ScimFilter[Any], attributes: AttributeMap) -> Compiled:
    """Compile a filter bound to one resource model."""
    try:
        condition, exact = _SqlFilter(scim_filter, attributes).visit(scim_filter.ast)
    except SCIMException as exc:
        raise from_scim_exception(exc) from None
    return Compiled(condition, exact)


class _SqlFilter(FilterVisitor[tuple[Condition, bool]]):
    def __init__(self, scim_filter: ScimFilter[Any], attributes: AttributeMap) -> None:
        self.filter = scim_filter
        self.attributes = attributes

    def _attribute(self, binding: AttributeBinding) -> Attribute | None:
        key = attribute_key(binding)
        return self.attributes.get(key) if key is not None else None

    def visit_logical_expr(self, node: LogicalExpr) -> tuple[Condition, bool]:
        compiled = [self.visit(term) for term in node.terms]
        conditions = [condition for condition, _ in compiled]
        joined = and_(*conditions) if node.op == LogicalOperator.and_ else or_(*conditions)
        return joined, all(exact for _, exact in compiled)

    def visit_not(self, node: Not) -> tuple[Condition, bool]:
        condition, exact = self.visit(node.expr)
        # The negation of a mere necessary condition is not necessary: no narrowing then.
        return (not_(condition), True) if exact else _SUPERSET

    def visit_value_path(self, node: ValuePath) -> tuple[Condition, bool]:
        return _SUPERSET

    def visit_present(self, node: Present) -> tuple[Condition, bool]:
        binding = self.filter.resolve(node.attr_path, strict=False)
        if binding is None:
            return _EXACT_FALSE  # not an attribute of this resource type (RFC 7644 §3.4.2.1)
        attribute = self._attribute(binding)
        if isinstance(attribute, Related):
            return attribute.any(), True
        if attribute is None or (binding.sub_field_name is None and binding.is_multivalued):
            return _SUPERSET
        expr = attribute.expr
        condition = (
            and_(expr.is_not(None), expr != "")
            if attribute.kind == "string"
            else (expr.is_not(None))
        )
        return condition, attribute.exact

    def visit_comparison(self, node: Comparison) -> tuple[Condition, bool]:
        binding = self.filter.resolve_comparison(node.attr_path, strict=False)
        if binding is None:
            return _EXACT_FALSE
        attribute = self._attribute(binding)
        if attribute is None:
            return _SUPERSET
        value = coerce_value(binding, node.value, node.op)
        if isinstance(attribute, Related):
            return _related(attribute, node.op, value)
        if not attribute.exact and node.op == CompareOperator.ne:
            return _SUPERSET
        compiled = _compare(attribute, binding.case_exact, node.op, value)
        if compiled is None:
            return _SUPERSET
        return compiled, attribute.exact


def _canonical_id(value: Any) -> uuid.UUID | None:
    """A UUID written exactly as Bulwark writes ids (ids compare case-exactly)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _related(attribute: Related, op: CompareOperator, value: Any) -> tuple[Condition, bool]:
    if op not in (CompareOperator.eq, CompareOperator.ne):
        return _SUPERSET
    target = _canonical_id(value)
    if target is None:
        if isinstance(value, str) and _looks_like_id(value):
            return _SUPERSET
        # No reference holds this value: eq matches nothing, ne everything.
        return (false(), True) if op == CompareOperator.eq else (true(), True)
    condition = attribute.contains(target)
    return (condition, True) if op == CompareOperator.eq else (not_(condition), True)


def _looks_like_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _compare(column: Column, case_exact: bool, op: CompareOperator, value: Any) -> Condition | None:
    """The exact SQL comparison, or None when SQL cannot say it exactly."""
    expr = column.expr
    if value is None:
        if op == CompareOperator.eq:
            return expr.is_(None)  # type: ignore[no-any-return]
        if op == CompareOperator.ne:
            return expr.is_not(None)  # type: ignore[no-any-return]
        return false()
    if column.kind == "id":
        target = _canonical_id(value)
        if op not in (CompareOperator.eq, CompareOperator.ne) or (
            target is None and _looks_like_id(str(value))
        ):
            return None
        if target is None:
            return false() if op == CompareOperator.eq else true()
        return (expr == target) if op == CompareOperator.eq else (expr != target)  # type: ignore[no-any-return]
    if column.kind == "boolean":
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            return None
        return _guarded(column, expr == value if op == CompareOperator.eq else expr != value, op)
    if column.kind == "datetime":
        if not isinstance(value, datetime) or value.tzinfo is None:
            return None
        if op == CompareOperator.eq:
            return _guarded(column, expr == value, op)
        if op == CompareOperator.ne:
            return _guarded(column, expr != value, op)
        if op in _ORDERING:
            return _guarded(column, getattr(expr, _ORDERING[op])(value), op)
        return None
    if not isinstance(value, str):
        return None
    if not case_exact:
        if not value.isascii():
            return None  # SQL lower() and Python's case folding differ beyond ASCII
        expr, value = func.lower(expr), value.lower()
    elif op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        return None  # LIKE ignores ASCII case on SQLite: not exact for case-exact attributes
    if op == CompareOperator.eq:
        return _guarded(column, expr == value, op)
    if op == CompareOperator.ne:
        return _guarded(column, expr != value, op)
    if op == CompareOperator.co:
        return _guarded(column, expr.contains(value, autoescape=True), op)
    if op == CompareOperator.sw:
        return _guarded(column, expr.startswith(value, autoescape=True), op)
    if op == CompareOperator.ew:
        return _guarded(column, expr.endswith(value, autoescape=True), op)
    # Ordering strings follows the database's collation, not code points: evaluated in Python.
    return None


def _guarded(column: Column, condition: Condition, op: CompareOperator) -> Condition:
    """SQL's comparisons with NULL are unknown; SCIM's are false (and ``ne`` is true)."""
    if not column.nullable:
        return condition
    if op == CompareOperator.ne:
        return or_(column.expr.is_(None), condition)
    return and_(column.expr.is_not(None), condition)


def order_clauses(
    column: Column, *, case_exact: bool, descending: bool, tiebreak: Sequence[Any]
) -> list[Any]:
    """ORDER BY for ``sortBy``: resources without a value last when ascending, first when
    descending (RFC 7644 §3.4.2.3, as scim2-models sorts), then the stable default order."""
    key = func.lower(column.expr) if column.kind == "string" and not case_exact else column.expr
    missing = column.expr.is_(None)
    if descending:
        return [missing.desc(), key.desc(), *tiebreak]
    return [missing.asc(), key.asc(), *tiebreak]
