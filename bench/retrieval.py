"""Retrieval figures, printed as one JSON document.

- ``ingest``: end-to-end ingestion throughput through the production path (parse, chunk, embed
  with ONNX MiniLM, BM25 sparse vector, seal, upsert into Qdrant Edge) over a public-domain
  corpus (``bench/data``: the US Constitution, the Declaration of Independence and the 50
  chapters of Genesis in the KJV), in chunks/s and tokens/s;
- ``quality``: recall@10 and MRR@10 of hybrid search on questions written over the Constitution
  and the Declaration, a hit being a retrieved chunk that contains the answer phrase, and the
  latency of the whole search (query embedding + filtered hybrid query + opening sealed text);
- ``query_embedding``: p50/p99 of embedding one question;
- ``scale``: the filtered hybrid query at 10k (and optionally 100k) chunks with 10% visible, from
  ``bench.vectorstore`` (random corpus vectors: embedding 100k real chunks does not fit a run),
  with and without the real query embedding.

    python -m bench.retrieval [--scale 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from bench._server import bench_member, bench_tenant, one_region_settings, percentiles
from kernel.tenancy import TenantRoute
from migrations.runner import migrate
from retrieval.acl import DocumentAcl
from retrieval.chunking import chunk_blocks
from retrieval.parsing import parse_document

DATA = Path(__file__).parent / "data"
HEADING = re.compile(
    r"^(Article [IVX]+|Amendment [IVX]+|Amendments|Preamble)$|^(Section \d+)$", re.M
)


def _markdown(text: str) -> str:
    """The plain-text Constitution with its article/amendment/section lines as headings, so the
    structure-aware chunker keeps each chunk's heading path."""
    return HEADING.sub(lambda m: f"## {m.group(1)}" if m.group(1) else f"### {m.group(2)}", text)


def corpus() -> list[tuple[str, str]]:
    """(title, markdown) of the public-domain corpus in ``bench/data`` (see its NOTICE.md)."""
    documents = [
        (
            "The Constitution of the United States",
            _markdown((DATA / "us-constitution.txt").read_text()),
        ),
        ("The Declaration of Independence", (DATA / "us-declaration.txt").read_text()),
    ]
    chapters: dict[int, list[str]] = {}
    with gzip.open(DATA / "kjv-genesis.jsonl.gz", "rt") as lines:
        for line in lines:
            verse = json.loads(line)
            chapters.setdefault(verse["chapter"], []).append(verse["text"])
    for chapter, verses in chapters.items():
        documents.append((f"Genesis {chapter}", f"# Genesis {chapter}\n\n" + " ".join(verses)))
    return documents


def labelled() -> list[tuple[str, str]]:
    items = json.loads((DATA / "constitution-questions.json").read_text())["items"]
    return [(item["question"], item["answer"]) for item in items]


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


async def ingest_and_query(runtime: Runtime) -> dict[str, Any]:
    tenant = await bench_tenant(runtime)
    route = TenantRoute.of(tenant)
    ctx = runtime.system.context(route)
    reader = bench_member(route, clearance=3)
    docs = corpus()
    counter = runtime.knowledge.counter
    tokens = sum(
        sum(
            counter.count_tokens(
                [
                    c.index_text(title)
                    for c in chunk_blocks(parse_document(text.encode(), "text/markdown"), counter)
                ]
            )
        )
        for title, text in docs
    )
    await runtime.knowledge.embedder.embed_async(["warm up"])  # model load, not ingest
    chunks, started = 0, time.perf_counter()
    for title, text in docs:
        async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
            chunks += await runtime.knowledge.ingest(
                ctx,
                runtime.keyring.for_tenant(session, ctx),
                document_id=uuid.uuid4(),
                version=1,
                title=title,
                data=text.encode(),
                media_type="text/markdown",
                acl=DocumentAcl(visibility="tenant"),
                metadata={},
            )
    ingest_seconds = time.perf_counter() - started

    questions = labelled()
    embed_times = []
    for question, _ in questions:
        t0 = time.perf_counter()
        await runtime.knowledge.embedder.embed_async([question])
        embed_times.append(time.perf_counter() - t0)

    reciprocal, hits_at_10, search_times = [], 0, []
    for question, answer in questions:
        async with runtime.registry.tenant_transaction(reader, read_only=True) as session:
            t0 = time.perf_counter()
            passages = await runtime.knowledge.search(
                reader, runtime.keyring.for_tenant(session, reader), question, top_k=10
            )
            search_times.append(time.perf_counter() - t0)
        wanted = _normal(answer)
        rank = next((n for n, p in enumerate(passages, 1) if wanted in _normal(p.text)), None)
        hits_at_10 += rank is not None
        reciprocal.append(1 / rank if rank else 0.0)
    return {
        "ingest": {
            "corpus": "US Constitution, Declaration of Independence, KJV Genesis (50 chapters)",
            "documents": len(docs),
            "chunks": chunks,
            "tokens": tokens,
            "mean_tokens_per_chunk": round(tokens / chunks, 1),
            "seconds": round(ingest_seconds, 2),
            "chunks_per_s": round(chunks / ingest_seconds, 1),
            "tokens_per_s": round(tokens / ingest_seconds),
        },
        "query_embedding": percentiles(embed_times),
        "quality": {
            "questions": len(questions),
            "corpus_chunks": chunks,
            "hit": "a retrieved chunk contains the answer phrase",
            "recall_at_10": round(hits_at_10 / len(questions), 3),
            "mrr_at_10": round(statistics.fmean(reciprocal), 3),
            "search_latency_including_embedding": percentiles(search_times),
        },
    }


async def run(scale: list[int], queries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as data_dir:
        settings = one_region_settings(Path(data_dir))
        await asyncio.to_thread(migrate, settings)
        runtime = Runtime.build(settings)
        try:
            report = await ingest_and_query(runtime)
            from bench.vectorstore import _run

            questions = [q for q, _ in labelled()]
            report["scale"] = [
                await _run(size, queries, questions, runtime.knowledge.embedder) for size in scale
            ]
        finally:
            await runtime.dispose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, nargs="*", default=[10_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    report = {"benchmark": "retrieval", **asyncio.run(run(args.scale, args.queries))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
