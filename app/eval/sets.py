"""Evaluation sets: documents to answer from, and questions with a reference answer, a rubric
(phrases a good answer must contain), or both. JSON, validated strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec

from kernel.errors import InvalidInput

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
EXAMPLE = Path(__file__).parent / "sets" / "example.json"


class EvalDocument(msgspec.Struct, forbid_unknown_fields=True):
    external_id: Short
    title: Short
    text: Text
    acl: dict[str, Any] = msgspec.field(default_factory=lambda: {"visibility": "tenant"})


class EvalCase(msgspec.Struct, forbid_unknown_fields=True):
    id: Short
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    reference: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    rubric: list[Short] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reference is None and not self.rubric:
            raise ValueError(f"case {self.id!r} needs a reference answer or a rubric")


class EvalSet(msgspec.Struct, forbid_unknown_fields=True):
    name: Short
    cases: Annotated[list[EvalCase], msgspec.Meta(min_length=1, max_length=10_000)]
    description: str = ""
    documents: list[EvalDocument] = msgspec.field(default_factory=list)


class EvalFailed(Exception):
    """The deployment refused the run (unreachable, bad key, ingestion failed)."""


class InvalidEvalSet(InvalidInput):
    code = "invalid_eval_set"
    title = "Invalid evaluation set"


def load(path: Path) -> EvalSet:
    try:
        loaded = msgspec.json.decode(path.read_bytes(), type=EvalSet)
    except OSError as exc:
        raise InvalidEvalSet(f"{path}: {exc.strerror}") from None
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        raise InvalidEvalSet(f"{path}: {exc}") from None
    ids = [case.id for case in loaded.cases]
    if len(ids) != len(set(ids)):
        raise InvalidEvalSet(f"{path}: case ids must be unique")
    return loaded
