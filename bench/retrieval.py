"""Retrieval figures, printed as one JSON document.

- ``ingest``: end-to-end ingestion throughput through the production path (parse, chunk, embed
  with ONNX MiniLM, BM25 sparse vector, seal, upsert into Qdrant Edge), in chunks/s;
- ``quality``: recall@10 and MRR@10 of hybrid search on a labelled question set (a synthetic
  corpus generated here: one document per fictional organisation, one question per fact, the
  gold answer being that organisation's document), and the latency of the whole search (query
  embedding + filtered hybrid query + opening the sealed text);
- ``query_embedding``: p50/p99 of embedding one query;
- ``scale``: filtered hybrid query p50/p99 at 10k (and optionally 100k) chunks with 10% visible,
  from ``bench.vectorstore`` (random vectors: embedding 100k real chunks does not fit a run).

    python -m bench.retrieval [--documents 60] [--scale 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from auth.context import TenantRoute, system_context, user_context
from bench._server import bench_tenant, one_region_settings, percentiles
from migrations.runner import migrate
from retrieval.acl import DocumentAcl

CITIES = [
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Montreal",
    "Osaka",
    "Valparaiso",
    "Tbilisi",
    "Perth",
    "Ghent",
    "Cusco",
    "Tallinn",
    "Da Nang",
    "Windhoek",
    "Reykjavik",
    "Porto",
    "Bergen",
]
PRODUCTS = [
    "solar inverters",
    "rope bridges",
    "wool blankets",
    "seismic sensors",
    "river ferries",
    "tea blends",
    "violin strings",
    "glass lenses",
    "bicycle frames",
    "weather balloons",
    "fishing nets",
    "paper lanterns",
    "copper kettles",
    "saddle leather",
    "ceramic tiles",
    "beeswax candles",
]
FIRST = [
    "Amara",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Esther",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kalani",
    "Lucia",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Silva",
    "Novak",
    "Haddad",
    "Byrne",
    "Kowalski",
    "Reyes",
    "Abebe",
    "Larsen",
    "Petrov",
    "Quispe",
    "Varga",
    "Yilmaz",
]


def corpus(count: int, seed: int = 7) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    rng = random.Random(seed)
    documents, questions = [], []
    for index in range(count):
        name = (
            f"{rng.choice(['Northwind', 'Bluefjord', 'Kestrel', 'Ironleaf', 'Suncrest'])} "
            f"{rng.choice(['Works', 'Cooperative', 'Guild', 'Company', 'Collective'])} {index}"
        )
        city, product = rng.choice(CITIES), rng.choice(PRODUCTS)
        founder = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        year, staff = rng.randint(1850, 2015), rng.randint(12, 4000)
        text = (
            f"# {name}\n\n## Headquarters\n\n{name} is headquartered in {city}, where its "
            f"workshops and offices share one building near the harbour.\n\n## History\n\n"
            f"{name} was founded in {year} by {founder}. It employs about {staff} people.\n\n"
            f"## Products\n\nThe main products of {name} are {product}, sold to customers in "
            f"more than {rng.randint(3, 60)} countries.\n"
        )
        documents.append((name, text))
        questions += [
            (f"Which city is {name} headquartered in?", index),
            (f"Who founded {name} and when?", index),
            (f"What does {name} make?", index),
        ]
    return documents, questions


async def ingest_and_query(documents: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as data_dir:
        settings = one_region_settings(Path(data_dir))
        await asyncio.to_thread(migrate, settings)
        runtime = Runtime.build(settings)
        try:
            tenant = await bench_tenant(runtime)
            route = TenantRoute.of(tenant)
            ctx = system_context(route)
            reader = user_context(
                route,
                user_id=uuid.uuid4(),
                roles=["member"],
                group_ids=[],
                auth_method="api_key",
                credential_id=None,
                clearance=3,
            )
            docs, questions = corpus(documents)
            ids = [uuid.uuid4() for _ in docs]
            await runtime.knowledge.embedder.embed_async(["warm up"])  # model load, not ingest
            chunks, started = 0, time.perf_counter()
            for doc_id, (_, text) in zip(ids, docs, strict=True):
                async with runtime.registry.tenant_transaction(ctx, read_only=True) as session:
                    chunks += await runtime.knowledge.ingest(
                        ctx,
                        runtime.keyring.for_tenant(session, ctx),
                        document_id=doc_id,
                        version=1,
                        data=text.encode(),
                        media_type="text/markdown",
                        acl=DocumentAcl(visibility="tenant"),
                        metadata={},
                    )
            ingest_seconds = time.perf_counter() - started

            embed_times = []
            for question, _ in questions[:100]:
                t0 = time.perf_counter()
                await runtime.knowledge.embedder.embed_async([question])
                embed_times.append(time.perf_counter() - t0)

            reciprocal, hits_at_10, search_times = [], 0, []
            for question, gold in questions:
                async with runtime.registry.tenant_transaction(reader, read_only=True) as session:
                    t0 = time.perf_counter()
                    passages = await runtime.knowledge.search(
                        reader, runtime.keyring.for_tenant(session, reader), question, top_k=10
                    )
                    search_times.append(time.perf_counter() - t0)
                ranked = list(dict.fromkeys(p.document_id for p in passages))
                rank = ranked.index(str(ids[gold])) + 1 if str(ids[gold]) in ranked else None
                hits_at_10 += rank is not None and rank <= 10
                reciprocal.append(1 / rank if rank else 0.0)
        finally:
            await runtime.dispose()
    return {
        "ingest": {
            "documents": documents,
            "chunks": chunks,
            "seconds": round(ingest_seconds, 2),
            "chunks_per_s": round(chunks / ingest_seconds, 1),
        },
        "query_embedding": percentiles(embed_times),
        "quality": {
            "questions": len(questions),
            "corpus_chunks": chunks,
            "recall_at_10": round(hits_at_10 / len(questions), 3),
            "mrr_at_10": round(statistics.fmean(reciprocal), 3),
            "search_latency_including_embedding": percentiles(search_times),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--scale", type=int, nargs="*", default=[10_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "benchmark": "retrieval",
        **asyncio.run(ingest_and_query(args.documents)),
    }
    if args.scale:
        from bench.vectorstore import _run

        report["scale"] = [asyncio.run(_run(size, args.queries)) for size in args.scale]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
