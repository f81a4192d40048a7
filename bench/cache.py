"""Semantic-cache quality on labelled question pairs, printed as one JSON document.

For each pair (a, b) the answer to ``a`` is stored through the real ``SemanticCache`` (sealed,
its question vector in the Edge question index) and ``b`` is looked up, as a chat request
would. ``same`` pairs should be served from the cache (a hit), the others should miss. Sets:

- ``public``: ``bench/data/cache_public/pairs.json``, built from public questions (SQuAD v1.1,
  and the paraphrase sets named in its NOTICE.md): repeats, typos, greetings, filler and human
  paraphrases that keep the answer; direction, negation, number, date, entity and scope changes
  that do not;
- ``own``: ``bench/data/cache-pairs.json``, written for Bulwark.

Reported per set and per kind: hit precision (hits that were right to hit) and recall (same-answer
pairs served); beside them the cosine of the pair alone at the same threshold (what the guard
adds) and a sweep of thresholds, so the default is a measured choice; and lookup latencies.

    python -m bench.cache [--sets public own]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._server import bench_member, bench_tenant, one_region_settings, percentiles

DATA = Path(__file__).parent / "data"
SETS = {"public": DATA / "cache_public" / "pairs.json", "own": DATA / "cache-pairs.json"}
SWEEP = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)


def _rates(rows: Sequence[tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    hits = [(p, h) for p, h in rows if h]
    same = [(p, h) for p, h in rows if p["same"]]
    return {
        "pairs": len(rows),
        "same_answer": len(same),
        "hits": len(hits),
        "precision": round(sum(p["same"] for p, _ in hits) / len(hits), 3) if hits else None,
        "recall": round(sum(h for _, h in same) / len(same), 3) if same else None,
        # For a kind whose pairs all differ: the share refused (what matters there).
        "refused": round(sum(not h for p, h in rows if not p["same"]) / (len(rows) - len(same)), 3)
        if len(rows) > len(same)
        else None,
    }


def _by_kind(rows: Sequence[tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    kinds = sorted({p["kind"] for p, _ in rows})
    return {k: _rates([(p, h) for p, h in rows if p["kind"] == k]) for k in kinds}


async def cache_figures(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every pair through the real cache at the default policy, and the cosine-only figures."""
    from app.runtime import Runtime
    from kernel.tenancy import TenantRoute
    from migrations.runner import migrate
    from retrieval.cache.guard import same_question
    from retrieval.cache.services import CachePolicy, SemanticCache
    from retrieval.models import Document

    with tempfile.TemporaryDirectory(prefix="bulwark-bench-cache-") as data_dir:
        settings = one_region_settings(Path(data_dir))
        await asyncio.to_thread(migrate, settings)
        runtime = Runtime.build(settings)
        try:
            route = TenantRoute.of(await bench_tenant(runtime))
            ctx = bench_member(route)
            document_id = uuid.uuid4()
            async with runtime.registry.tenant_transaction(ctx) as session:
                keys = runtime.keyring.for_tenant(session, ctx)
                session.add(
                    Document(
                        id=document_id,
                        tenant_id=ctx.tenant_id,
                        owner_id=ctx.user_id,
                        sealed_title=await keys.seal("document-title", str(document_id), b"T"),
                        media_type="text/plain",
                        size_bytes=1,
                        content_hash="0" * 64,
                        version=1,
                        status="ready",
                        acl={
                            "visibility": "tenant",
                            "groups": [],
                            "users": [],
                            "classification": 0,
                            "attributes": {},
                            "owner": None,
                        },
                        meta={},
                    )
                )
            questions = await runtime.knowledge.questions(ctx)
            embedder = runtime.knowledge.embedder
            policy = CachePolicy()
            scope = {"mode": "generative", "top_k": 5}

            async def with_cache(work: Any) -> Any:
                async with runtime.registry.tenant_transaction(ctx) as session:
                    cache = SemanticCache(
                        ctx,
                        session,
                        runtime.keyring.for_tenant(session, ctx),
                        questions,
                        pepper=runtime.pepper,
                        policy=policy,
                    )
                    return await work(cache)

            vectors_a = await embedder.embed_async([p["a"] for p in pairs])
            vectors_b = await embedder.embed_async([p["b"] for p in pairs])
            cosines = np.sum(vectors_a * vectors_b, axis=1)
            served: list[tuple[dict[str, Any], bool]] = []
            exact_t: list[float] = []
            semantic_t: list[float] = []
            miss_t: list[float] = []
            for pair, va, vb in zip(pairs, vectors_a.tolist(), vectors_b.tolist(), strict=True):
                await with_cache(
                    lambda c, va=va, pair=pair: c.store(
                        pair["a"], va, scope, {"answer": "x"}, {document_id: 1}
                    )
                )
                started = time.perf_counter()
                exact = await with_cache(lambda c, va=va, pair=pair: c.lookup(pair["a"], va, scope))
                exact_t.append(time.perf_counter() - started)
                assert exact.outcome == "exact"
                started = time.perf_counter()
                found = await with_cache(lambda c, vb=vb, pair=pair: c.lookup(pair["b"], vb, scope))
                elapsed = time.perf_counter() - started
                (semantic_t if found.hit else miss_t).append(elapsed)
                served.append((pair, found.hit is not None))
                await with_cache(lambda c: c.erase_subject(ctx.user_id))
        finally:
            await runtime.dispose()
    guarded = [same_question(p["a"], p["b"]) for p in pairs]
    sweep = {}
    for threshold in SWEEP:
        cosine_only = [(p, bool(c >= threshold)) for p, c in zip(pairs, cosines, strict=True)]
        with_guard = [
            (p, bool(c >= threshold) and g) for p, c, g in zip(pairs, cosines, guarded, strict=True)
        ]
        sweep[f"{threshold:.2f}"] = {
            "cosine_only": _rates(cosine_only),
            "with_guard": _rates(with_guard),
        }
    return {
        "threshold": policy.threshold,
        "served": _rates(served),
        "served_by_kind": _by_kind(served),
        "cosine_only_at_threshold": _rates(
            [(p, bool(c >= policy.threshold)) for p, c in zip(pairs, cosines, strict=True)]
        ),
        "threshold_sweep": sweep,
        "lookup_exact_hit": percentiles(exact_t),
        "lookup_semantic_hit": percentiles(semantic_t) if semantic_t else None,
        "lookup_miss": percentiles(miss_t) if miss_t else None,
    }


def load(name: str) -> tuple[str, list[dict[str, Any]]]:
    data = json.loads(SETS[name].read_text())
    return data.get("source", ""), data["pairs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "cache", "targets": {"hit_precision": 0.97}, "sets": {}}
    for name in args.sets:
        source, pairs = load(name)
        report["sets"][name] = {"source": source, **asyncio.run(cache_figures(pairs))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
