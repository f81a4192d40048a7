"""DLP analysis: Presidio as shipped vs Bulwark's configuration, side by side (same model, texts).

"As shipped": ``AnalyzerEngine`` with its default recognizer registry (every predefined
recognizer, all entities) on a ``SpacyNlpEngine`` running the full en_core_web_sm pipeline of the
pinned package (tok2vec, tagger, parser, attribute ruler, lemmatizer, ner). The only change is the
one every offline deployment needs: tldextract reads its bundled suffix list.

"Bulwark": ``dlp.adapters.presidio.PresidioDetector`` asked for the entity types of the default
policy (see that module for what it trims).

Two labelled sets (``bench.dlp_corpus``):

* the project's own (``generate``): latency is per 1 KB of text, documents of ~1 KB built from
  it, each analysed alone, the two configurations interleaved document by document so that
  machine load hits both alike; Bulwark asks for the default policy's types;
* a public one nobody here wrote (``load_public``: presidio-evaluator's templates, people and
  formats, 1,500 sentences): latency per sentence, interleaved likewise; Bulwark asks for every
  labelled type it offers, as a policy naming them would (ORGANIZATION and NRP included: their
  whole-text NER pass runs), and is timed a second time on the default policy's types
  (``bulwark_default_policy``), which never run that pass.

Recall counts an entity only when it is hidden in full; precision, findings that overlap a
labelled entity (``bench.dlp_corpus.score``). Each configuration keeps results at or above its
score threshold: 0.5 as shipped (0.35 for phone numbers, as Bulwark's default), Bulwark's the
default policy's per-type thresholds, 0.5 for types outside it. ``public.recall_gap`` is
Bulwark's recall minus shipped's per type, over the PII types Bulwark offers.

    python -m bench.dlp [--samples 400] [--rounds 3] [--public 1500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from bench.dlp_corpus import EVALUATED, Sample, generate, labelled_types, load_public, score
from dlp.adapters.presidio import (
    SPACY_MODEL,
    PresidioDetector,
    model_version,
    shipped_analyzer,
)
from dlp.policies import DEFAULT_POLICY
from dlp.ports import DetectionRequest

SHIPPED_THRESHOLD = 0.5


def documents(samples: list[Sample], size: int = 1024) -> list[str]:
    docs, current = [], ""
    for sample in samples:
        if current and len(current) + len(sample.text) + 2 > size:
            docs.append(current)
            current = ""
        current += ("\n\n" if current else "") + sample.text
    if current:
        docs.append(current)
    return docs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--public", type=int, default=None, help="public sentences (all: 1,500)")
    args = parser.parse_args()

    samples = generate(args.samples)
    docs = documents(samples)
    detector = PresidioDetector()
    request = DetectionRequest(frozenset(r.entity_type for r in DEFAULT_POLICY.entities))
    # Load times include the first analysis (lazy parts); spaCy itself is imported before both.
    import spacy  # noqa: F401

    started = time.perf_counter()
    shipped = shipped_analyzer()
    shipped.analyze("Warm up for John Smith.", language="en")
    shipped_load = time.perf_counter() - started
    started = time.perf_counter()
    detector.warm_up()
    detector.detect(["Warm up for John Smith."], request)
    bulwark_load = time.perf_counter() - started

    per_kb: dict[str, list[float]] = {"shipped": [], "bulwark": []}
    for _ in range(args.rounds):
        for doc in docs:
            kb = len(doc.encode()) / 1024
            t0 = time.perf_counter()
            shipped.analyze(doc, language="en")
            t1 = time.perf_counter()
            detector.detect([doc], request)
            t2 = time.perf_counter()
            per_kb["shipped"].append((t1 - t0) * 1000 / kb)
            per_kb["bulwark"].append((t2 - t1) * 1000 / kb)

    # Batched (the ingest path: one call for many chunks).
    t0 = time.perf_counter()
    detector.detect(docs, request)
    batch_ms_per_kb = (
        (time.perf_counter() - t0) * 1000 / (sum(len(d.encode()) for d in docs) / 1024)
    )

    thresholds = {r.entity_type: r.threshold for r in DEFAULT_POLICY.entities}

    def kept_bulwark(found: list[Any]) -> list[tuple[str, int, int]]:
        return [
            (f.entity_type, f.start, f.end)
            for f in found
            if f.score >= thresholds.get(f.entity_type, SHIPPED_THRESHOLD)
        ]

    def kept_shipped(found: list[Any]) -> list[tuple[str, int, int]]:
        return [
            (r.entity_type, r.start, r.end)
            for r in found
            if r.score >= min(SHIPPED_THRESHOLD, thresholds.get(r.entity_type, 1.0))
        ]

    bulwark_found = [
        kept_bulwark(found) for found in detector.detect([s.text for s in samples], request)
    ]
    shipped_found = [kept_shipped(shipped.analyze(s.text, language="en")) for s in samples]

    def quality(
        found: list[list[tuple[str, int, int]]],
        on: list[Sample] = samples,
        types: tuple[str, ...] = EVALUATED,
    ) -> dict[str, Any]:
        return {
            kind: {"precision": s.precision, "recall": s.recall, "support": s.support}
            for kind, s in score(on, found, types).items()
        }

    public = load_public(args.public)
    public_types = labelled_types(public)
    offered = tuple(t for t in public_types if t in detector.supported_entities)
    public_request = DetectionRequest(frozenset(offered))
    per_sentence: dict[str, list[float]] = {"shipped": [], "bulwark": [], "default": []}
    public_found: dict[str, list[list[tuple[str, int, int]]]] = {"shipped": [], "bulwark": []}
    for sample in public:
        t0 = time.perf_counter()
        raw = shipped.analyze(sample.text, language="en")
        t1 = time.perf_counter()
        (mine,) = detector.detect([sample.text], public_request)
        t2 = time.perf_counter()
        detector.detect([sample.text], request)
        t3 = time.perf_counter()
        per_sentence["shipped"].append((t1 - t0) * 1000)
        per_sentence["bulwark"].append((t2 - t1) * 1000)
        per_sentence["default"].append((t3 - t2) * 1000)
        public_found["shipped"].append(kept_shipped(raw))
        public_found["bulwark"].append(kept_bulwark(mine))
    public_quality = {
        name: quality(found, public, public_types) for name, found in public_found.items()
    }
    recall_gap = {
        kind: round(
            public_quality["bulwark"][kind]["recall"] - public_quality["shipped"][kind]["recall"],
            3,
        )
        for kind in offered
    }

    p50 = {name: percentile(values, 50) for name, values in per_kb.items()}
    result = {
        "benchmark": "dlp_analyze",
        "model": {"package": SPACY_MODEL, "version": model_version()},
        "documents": len(docs),
        "mean_document_bytes": round(statistics.mean(len(d.encode()) for d in docs)),
        "rounds": args.rounds,
        "labelled_samples": len(samples),
        "evaluated_entities": list(EVALUATED),
        "shipped": {
            "config": "AnalyzerEngine default registry, full en_core_web_sm pipeline, all entities",
            "load_seconds": round(shipped_load, 2),
            "ms_per_kb": {"p50": p50["shipped"], "p99": percentile(per_kb["shipped"], 99)},
            "quality": quality(shipped_found),
        },
        "bulwark": {
            "config": "trimmed pipeline (ner only), gated NER windows, policy entity types",
            "load_seconds": round(bulwark_load, 2),
            "ms_per_kb": {"p50": p50["bulwark"], "p99": percentile(per_kb["bulwark"], 99)},
            "batched_ms_per_kb": round(batch_ms_per_kb, 2),
            "quality": quality(bulwark_found),
        },
        "speedup_p50": round(p50["shipped"] / p50["bulwark"], 2),
        "speedup_p99": round(
            percentile(per_kb["shipped"], 99) / percentile(per_kb["bulwark"], 99), 2
        ),
        "public": {
            "source": "presidio-evaluator 0.3.2 templates, people and formats "
            "(bench/data/pii_public)",
            "sentences": len(public),
            "labelled_types": list(public_types),
            "offered_by_bulwark": list(offered),
            "shipped": {
                "ms_per_sentence": {
                    "p50": percentile(per_sentence["shipped"], 50),
                    "p99": percentile(per_sentence["shipped"], 99),
                },
                "quality": public_quality["shipped"],
            },
            "bulwark": {
                "ms_per_sentence": {
                    "p50": percentile(per_sentence["bulwark"], 50),
                    "p99": percentile(per_sentence["bulwark"], 99),
                },
                "quality": public_quality["bulwark"],
            },
            "bulwark_default_policy": {
                "entities": sorted(request.entities),
                "ms_per_sentence": {
                    "p50": percentile(per_sentence["default"], 50),
                    "p99": percentile(per_sentence["default"], 99),
                },
            },
            "recall_gap": recall_gap,
            "worst_recall_gap": min(recall_gap.values()),
            "speedup_p50": round(
                percentile(per_sentence["shipped"], 50) / percentile(per_sentence["bulwark"], 50),
                2,
            ),
            "speedup_p50_default_policy": round(
                percentile(per_sentence["shipped"], 50) / percentile(per_sentence["default"], 50),
                2,
            ),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
