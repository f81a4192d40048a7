"""Retrieve: the passages this asker may read that bear on the question, and whether they
answer it.

- Hybrid search with the ABAC filter inside the vector query (``retrieval.index``), per part
  for a multi-part question when the request or the tenant's policy asks (``chat.workflows``:
  fan-out, then reciprocal rank fusion); nothing at all when even the best match is below the
  policy's ``min_relevance``;
- the titles and versions of the documents cited (titles opened with the tenant's key);
- the injection guard on the retrieved chunks (``DlpService.guard_chunks``): a chunk it drops
  is no source, a chunk it wraps is quoted without the instruction it carried;
- the evidence test (``answers``): abstention is decided from the evidence before any model is
  paid.
"""

from __future__ import annotations

import asyncio
import uuid

from opentelemetry import trace

from chat.turn import ChatDeps, ChatTurn, Unit
from chat.workflows import fan_out, subquestions
from dlp.services import DlpService
from retrieval.extractive import evidence
from retrieval.index import Passage
from retrieval.repositories import DocumentRepository

_tracer = trace.get_tracer("bulwark.chat")


async def retrieve(deps: ChatDeps, unit: Unit, dlp: DlpService, turn: ChatTurn) -> None:
    """``turn.passages`` (the guarded ones), ``titles``, ``versions`` and ``parts``."""
    with _tracer.start_as_current_span("retrieve") as span:
        await _search(deps, unit, turn)
        guarded_chunks = await dlp.guard_chunks(turn.sources)
        span.set_attribute("bulwark.retrieve.passages", len(turn.passages))
        span.set_attribute("bulwark.retrieve.parts", turn.parts)
    kept = [(p, text) for p, text in zip(turn.passages, guarded_chunks, strict=True) if text]
    turn.passages = [
        Passage(p.chunk_id, p.document_id, p.score, p.heading_path, text) for p, text in kept
    ]


async def _search(deps: ChatDeps, unit: Unit, turn: ChatTurn) -> None:
    request, policy, ctx = turn.request, turn.policy, deps.ctx
    parts = (
        subquestions(turn.question)
        if (request.parallel if request.parallel is not None else policy.parallel)
        else [turn.question]
    )

    async def search(part: str) -> list[Passage]:
        vector = turn.vector if part == turn.question else None
        return await deps.knowledge.search(
            ctx, unit.keys, part, top_k=request.top_k, filters=request.filters, vector=vector
        )

    turn.parts = len(parts)
    if len(parts) > 1:
        passages = await fan_out(parts, search, top_k=request.top_k)
    else:
        passages = await search(turn.question)
    best = await deps.knowledge.best_similarity(ctx, turn.vector, request.filters)
    relevant = best is not None and best >= policy.min_relevance
    turn.passages = passages if relevant else []
    documents = await DocumentRepository(unit.session, ctx).get_many(
        list({uuid.UUID(p.document_id) for p in turn.passages})
    )
    for document in documents:
        title = await unit.keys.open("document-title", str(document.id), document.sealed_title)
        turn.titles[str(document.id)] = title.decode()
        turn.versions[document.id] = document.version


async def answers(deps: ChatDeps, turn: ChatTurn) -> bool:
    """The retrieved text holds a sentence that covers what the question specifically asks.
    A follow-up ("and for trains?") leans on the conversation, so it goes to the model and the
    answer gate judges what comes back."""
    return bool(turn.history) or await asyncio.to_thread(
        evidence,
        turn.asked,
        turn.quotable,
        deps.sentence_vectors(),
        turn.vector,
        contexts=turn.contexts,
    )
