"""The orchestration patterns, as small bounded pieces the chat service composes.

- chain: retrieve → compose → generate → gate (``chat.pipeline`` runs it; the default path);
- branch: the gateway's router picks the tier; the chat service branches to "nothing found" and
  to extractive answers without a model call;
- loop: ``chat.stages.generate.revise`` — when the answer gate (``chat.gate``) refuses a sentence,
  one revision that names the failing sentences, then the cited extractive answer;
- parallel: ``subquestions`` + ``fan_out`` — a multi-part question is retrieved per part
  concurrently and the results fused (reciprocal rank); the reduce step (the one answer over all
  parts) goes to the highest tier the tenant allows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

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


def add_usage(first: Generation, second: Generation) -> Generation:
    """``second``'s text and model with the usage of both (a revision is paid on top)."""
    return replace(
        second,
        input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens,
        cost_microdollars=first.cost_microdollars + second.cost_microdollars,
    )


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
