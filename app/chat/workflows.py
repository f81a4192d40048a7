"""The orchestration patterns, as small bounded pieces the chat service composes.

- chain: retrieve → compose → generate → check (``ChatService`` runs it; the default path);
- branch: the gateway's router picks the tier; the chat service branches to "nothing found" and
  to extractive answers without a model call;
- loop: ``revise`` — critique → revise while groundedness is low, at most two revisions, under a
  token cap, stopping without a model call when the check passes or stops improving;
- parallel: ``subquestions`` + ``fan_out`` — a multi-part question is retrieved per part
  concurrently and the results fused (reciprocal rank); the reduce step (the one answer over all
  parts) goes to the highest tier the tenant allows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from retrieval.grounding import Grounding, check
from retrieval.index import Passage

RRF_K = 60
MAX_PARTS = 4


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    cost_microdollars: int
    tier: str
    provider: str
    reason: str


class Generate(Protocol):
    async def __call__(self, messages: list[dict[str, str]], *, model: str) -> Generation: ...


def add_usage(first: Generation, second: Generation) -> Generation:
    """``second``'s text and model with the usage of both (a revision is paid on top)."""
    return replace(
        second,
        input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens,
        cost_microdollars=first.cost_microdollars + second.cost_microdollars,
    )


def critique(grounding: Grounding) -> str:
    """A critique that needs no model: the sentences the check could not tie to a source."""
    lines = [
        "Revise your answer. Keep only statements the numbered sources support, cite each "
        "with [n], and say when the sources do not say."
    ]
    if grounding.unsupported_sentences:
        lines.append("Not supported by the source they cite:")
        lines += [f"- {s}" for s in grounding.unsupported_sentences]
    if grounding.uncited_sentences:
        lines.append("Without a citation:")
        lines += [f"- {s}" for s in grounding.uncited_sentences]
    return "\n".join(lines)


async def revise(
    messages: list[dict[str, str]],
    first: Generation,
    sources: Sequence[str],
    generate: Generate,
    *,
    model: str,
    threshold: float,
    max_revisions: int = 2,
    token_cap: int = 4000,
) -> tuple[Generation, Grounding, int]:
    """The loop pattern. Returns the best answer, its grounding and the revisions made."""
    best, grounding = first, check(first.text, sources)
    total, revisions = first, 0
    while (
        grounding.score < threshold
        and revisions < min(max_revisions, 2)
        and total.input_tokens + total.output_tokens < token_cap
    ):
        attempt = await generate(
            [
                *messages,
                {"role": "assistant", "content": best.text},
                {"role": "user", "content": critique(grounding)},
            ],
            model=model,
        )
        revisions += 1
        total = add_usage(total, attempt)
        checked = check(attempt.text, sources)
        if checked.score <= grounding.score:
            break  # no better: stop rather than spend another call
        best, grounding = attempt, checked
    paid = replace(
        best,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        cost_microdollars=total.cost_microdollars,
    )
    return paid, grounding, revisions


_SPLIT = re.compile(r"(?<=\?)\s+|;\s+|\s+and also\s+|\s+as well as\s+", re.I)


def subquestions(question: str) -> list[str]:
    """The parts of a multi-part question (``A? B?``, ``A; B``, ``A and also B``), at most four;
    a one-part question is returned as is."""
    parts = [p.strip() for p in _SPLIT.split(question) if len(p.strip().split()) >= 3]
    return parts[:MAX_PARTS] if len(parts) > 1 else [question]


async def fan_out(
    parts: Sequence[str], retrieve: Callable[[str], Awaitable[list[Passage]]], *, top_k: int
) -> list[Passage]:
    """Retrieve every part concurrently and fuse the rankings (reciprocal rank fusion)."""
    ranked = await asyncio.gather(*(retrieve(part) for part in parts))
    scores: dict[str, float] = {}
    passages: dict[str, Passage] = {}
    for hits in ranked:
        for rank, passage in enumerate(hits, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + 1 / (RRF_K + rank)
            passages.setdefault(passage.chunk_id, passage)
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:top_k]
    return [replace(passages[c], score=scores[c]) for c in order]
