"""Every numeric target of the earlier issues, and where its measured figure is read from.

One table for `make bench` (``bench/run.py`` writes ``bench/results/SUMMARY.md`` from it) and for
docs/PERFORMANCE.md. A target reads its figure from one benchmark's JSON document
(``bench/results/<script>.json``). Rows without a threshold are figures an issue asked to be
reported ("Report the figures") without setting a bar; they are listed so that nothing an issue
asked for is missing from the summary.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    issue: int
    what: str
    script: str  # bench/<script>.py, its JSON in bench/results/<script>.json
    read: Callable[[Results], float | None]
    unit: str
    op: str | None = None  # "<=" or ">="; None: a figure to report, no bar
    bar: float | None = None

    def met(self, value: float | None) -> bool | None:
        if self.op is None or self.bar is None or value is None:
            return None
        compare = {"<=": operator.le, ">=": operator.ge}[self.op]
        return bool(compare(value, self.bar))

    @property
    def wanted(self) -> str:
        return (
            f"{self.op} {self.bar:g} {self.unit}".strip()
            if self.op and self.bar is not None
            else "-"
        )


def _path(*keys: str | int) -> Callable[[Results], float | None]:
    def read(doc: Results) -> float | None:
        value: Any = doc
        for key in keys:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return None
        return None if value is None else float(value)

    return read


def _http(path: str, field: str) -> Callable[[Results], float | None]:
    def read(doc: Results) -> float | None:
        for row in doc.get("results", []):
            if row.get("path") == path:
                return float(row[field])
        return None

    return read


def _corpus(size: int, field: str) -> Callable[[Results], float | None]:
    def read(doc: Results) -> float | None:
        for run in doc.get("runs", []):
            if run.get("points_in_tenant") == size:
                return _path("search_optimized_with_query_embedding", field)(run)
        return None

    return read


def _at(section: str, key: str, value: int, *path: str | int) -> Callable[[Results], float | None]:
    """The row of ``doc[section]`` whose ``key`` equals ``value``, then ``path`` inside it."""

    def read(doc: Results) -> float | None:
        for row in doc.get(section, []):
            if row.get(key) == value:
                return _path(*path)(row)
        return None

    return read


def _worst_recall_gap(doc: Results) -> float | None:
    """min over the evaluated entity types of (Bulwark recall - as-shipped recall)."""
    try:
        shipped = doc["shipped"]["quality"]
        ours = doc["bulwark"]["quality"]
        return float(
            min(ours[k]["recall"] - shipped[k]["recall"] for k in doc["evaluated_entities"])
        )
    except (KeyError, TypeError, ValueError):
        return None


TARGETS: tuple[Target, ...] = (
    # #2 Foundation: HTTP baseline, figures only.
    Target(
        2,
        "GET /healthz requests/s (c16, 1 process)",
        "http_baseline",
        _http("/healthz", "requests_per_s"),
        "req/s",
    ),
    Target(2, "GET /healthz p50 (c16)", "http_baseline", _http("/healthz", "p50_ms"), "ms"),
    Target(
        2,
        "GET /v1/me (API key) requests/s (c16)",
        "http_baseline",
        _http("/v1/me", "requests_per_s"),
        "req/s",
    ),
    Target(2, "GET /v1/me p50 (c16)", "http_baseline", _http("/v1/me", "p50_ms"), "ms"),
    Target(2, "GET /v1/me p99 (c16)", "http_baseline", _http("/v1/me", "p99_ms"), "ms"),
    # #3 Trust core: envelope encryption and DEK cache, figures only.
    Target(
        3,
        "AES-256-GCM seal, 64 KiB messages",
        "crypto",
        _path("envelope", 1, "seal_mb_per_s"),
        "MB/s",
    ),
    Target(
        3,
        "AES-256-GCM open, 64 KiB messages",
        "crypto",
        _path("envelope", 1, "open_mb_per_s"),
        "MB/s",
    ),
    Target(
        3,
        "DEK cache hit p50 (local KMS)",
        "crypto",
        _path("dek", "local", "cache_hit", "p50_ms"),
        "ms",
    ),
    Target(
        3,
        "DEK cache miss p50 (local KMS)",
        "crypto",
        _path("dek", "local", "cache_miss", "p50_ms"),
        "ms",
    ),
    Target(
        3,
        "DEK cache miss p50 (AWS KMS on moto)",
        "crypto",
        _path("dek", "aws_kms_moto", "cache_miss", "p50_ms"),
        "ms",
    ),
    # #5 Retrieval.
    Target(
        5,
        "Ingest throughput, end to end",
        "retrieval",
        _path("ingest", "chunks_per_s"),
        "chunks/s",
        ">=",
        250,
    ),
    Target(
        5,
        "Filtered hybrid search p50 at 100k chunks, 10% visible, query embedding included",
        "vectorstore",
        _corpus(100_000, "p50_ms"),
        "ms",
        "<=",
        10,
    ),
    Target(
        5,
        "Filtered hybrid search p99 at 100k chunks (query embedding included)",
        "vectorstore",
        _corpus(100_000, "p99_ms"),
        "ms",
    ),
    Target(
        5,
        "Filtered hybrid search p50 at 10k chunks (query embedding included)",
        "vectorstore",
        _corpus(10_000, "p50_ms"),
        "ms",
    ),
    Target(
        5,
        "Filtered hybrid search p99 at 10k chunks (query embedding included)",
        "vectorstore",
        _corpus(10_000, "p99_ms"),
        "ms",
    ),
    Target(
        5,
        "recall@10, labelled public-domain questions",
        "retrieval",
        _path("quality", "recall_at_10"),
        "",
    ),
    Target(
        5,
        "MRR@10, labelled public-domain questions",
        "retrieval",
        _path("quality", "mrr_at_10"),
        "",
    ),
    # #6 DLP.
    Target(
        6,
        "DLP analyze speed-up over Presidio as shipped (p50 per KB)",
        "dlp",
        _path("speedup_p50"),
        "x",
        ">=",
        4,
    ),
    Target(
        6,
        "Recall, Bulwark minus as shipped, worst entity type (equal or better)",
        "dlp",
        _worst_recall_gap,
        "",
        ">=",
        0,
    ),
    Target(6, "DLP analyze p50 per KB, Bulwark", "dlp", _path("bulwark", "ms_per_kb", "p50"), "ms"),
    Target(6, "DLP analyze p99 per KB, Bulwark", "dlp", _path("bulwark", "ms_per_kb", "p99"), "ms"),
    Target(
        6,
        "DLP analyze p50 per KB, Presidio as shipped",
        "dlp",
        _path("shipped", "ms_per_kb", "p50"),
        "ms",
    ),
    # #24 DLP recall on a public set (presidio-evaluator's templates), beside Presidio as shipped.
    Target(
        24,
        "PII recall, Bulwark minus as shipped, worst type offered, public set",
        "dlp",
        _path("public", "worst_recall_gap"),
        "",
        ">=",
        0,
    ),
    *(
        Target(
            24,
            f"PII recall {kind}, public set, {who}",
            "dlp",
            _path("public", key, "quality", kind, "recall"),
            "",
        )
        for kind in (
            "PERSON",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "STREET_ADDRESS",
            "DATE_TIME",
            "ORGANIZATION",
            "NRP",
        )
        for who, key in (("Bulwark", "bulwark"), ("as shipped", "shipped"))
    ),
    Target(
        24,
        "DLP p50 per sentence, public set, speed-up over as shipped",
        "dlp",
        _path("public", "speedup_p50"),
        "x",
    ),
    Target(
        24,
        "DLP p50 per sentence, public set, default policy, Bulwark",
        "dlp",
        _path("public", "bulwark_default_policy", "ms_per_sentence", "p50"),
        "ms",
    ),
    Target(
        24,
        "DLP p50 per sentence, public set, default policy, speed-up over as shipped",
        "dlp",
        _path("public", "speedup_p50_default_policy"),
        "x",
    ),
    # #7 Gateway.
    Target(
        7,
        "Gateway added latency p50 (non-streaming, c1)",
        "gateway",
        _path("non_stream_c1", "added_p50_ms"),
        "ms",
        "<=",
        2,
    ),
    Target(
        7,
        "Gateway added latency p99 (non-streaming, c1)",
        "gateway",
        _path("non_stream_c1", "added_p99_ms"),
        "ms",
        "<=",
        10,
    ),
    # With a quota to enforce every call makes one more durable transaction (its reservation):
    # reported beside the issue's figure, and compared with its 2 / 10 ms in docs/PERFORMANCE.md
    # (around that bar on session 7's host, not reliably under it).
    Target(
        7,
        "Gateway added latency p50 with a tenant quota enforced (non-streaming, c1)",
        "gateway",
        _path("non_stream_c1_quota", "added_p50_ms"),
        "ms",
    ),
    Target(
        7,
        "Gateway added latency p99 with a tenant quota enforced (non-streaming, c1)",
        "gateway",
        _path("non_stream_c1_quota", "added_p99_ms"),
        "ms",
    ),
    Target(
        7,
        "Gateway added time to first byte p50 (streaming, c1)",
        "gateway",
        _path("stream_ttfb_c1", "added_p50_ms"),
        "ms",
    ),
    Target(
        7,
        "Gateway added latency p50 (non-streaming, c64)",
        "gateway",
        _path("non_stream_c64", "added_p50_ms"),
        "ms",
    ),
    Target(
        7,
        "Gateway requests/s, one API process (non-streaming, c64)",
        "gateway",
        _path("non_stream_c64", "gateway_requests_per_s"),
        "req/s",
    ),
    Target(
        7,
        "Routed cost of the mixed workload, share of always-frontier",
        "gateway",
        _path("mixed_workload_cost", "routed_share_of_frontier"),
        "",
        "<=",
        0.4,
    ),
    # #8 Chat.
    Target(
        8,
        "Chat overhead p50 (c1, DLP and cache on, zero-latency model)",
        "chat",
        _path("overhead", "c1", "overhead_p50_ms"),
        "ms",
        "<=",
        30,
    ),
    Target(8, "Chat overhead p99 (c1)", "chat", _path("overhead", "c1", "overhead_p99_ms"), "ms"),
    Target(8, "Chat overhead p50 (c16)", "chat", _path("overhead", "c16", "overhead_p50_ms"), "ms"),
    Target(
        8,
        "Semantic cache hit precision (default threshold)",
        "chat",
        _path("cache", "hit_precision"),
        "",
        ">=",
        0.97,
    ),
    Target(
        8, "Semantic cache hit rate on same-answer pairs", "chat", _path("cache", "hit_rate"), ""
    ),
    Target(
        8,
        "Cache lookup p50, semantic hit",
        "chat",
        _path("cache", "lookup_semantic_hit", "p50_ms"),
        "ms",
    ),
    # #10 Observability: the judge samples 1-5% of chat traffic (a configured share, not a timing).
    Target(
        10,
        "LLM-as-judge sample rate, default (configured)",
        "run",
        _path("configuration", "judge_sample_rate_percent"),
        "%",
        "<=",
        5,
    ),
    Target(
        10,
        "LLM-as-judge sample rate, default (configured), lower bound",
        "run",
        _path("configuration", "judge_sample_rate_percent"),
        "%",
        ">=",
        1,
    ),
    # #12 Scale-out: the benchmark suite itself.
    Target(
        12, "`make bench` wall time on this machine", "run", _path("total_seconds"), "s", "<=", 900
    ),
    # #12: how cost grows (three sizes each; explained in docs/PERFORMANCE.md).
    *(
        Target(
            12,
            f"Search p50 with {n} tenant(s) sharing the region (c1)",
            "scaling",
            _at("tenants", "tenants", n, "search", "p50_ms"),
            "ms",
        )
        for n in (1, 10, 100)
    ),
    *(
        Target(
            12,
            f"Search server CPU per request with {n} tenant(s)",
            "scaling",
            _at("tenants", "tenants", n, "search", "server_cpu_ms_per_request"),
            "ms",
        )
        for n in (1, 10, 100)
    ),
    *(
        Target(
            12,
            f"Search requests/s at concurrency {c} (one API process)",
            "scaling",
            _at("concurrency", "concurrency", c, "requests_per_s"),
            "req/s",
        )
        for c in (1, 8, 32)
    ),
    *(
        Target(
            12,
            f"Search p50 at {n:,} chunks, query embedding included",
            "vectorstore",
            _corpus(n, "p50_ms"),
            "ms",
        )
        for n in (1_000,)
    ),
    # Answers you can trust (#21): bench/answers.py on the public QA set.
    Target(
        21,
        "Delivered unsupported factual sentences, every mode and model, JSON and streamed",
        "answers",
        _path("unsupported_delivered_all_modes"),
        "",
        "<=",
        0,
    ),
    Target(
        21,
        "Citation precision, extractive (the default of the embedded deployment)",
        "answers",
        _path("modes", "extractive", "citation_precision"),
        "",
        ">=",
        0.95,
    ),
    Target(
        21,
        "Abstention balanced accuracy, extractive",
        "answers",
        _path("modes", "extractive", "abstention", "balanced_accuracy"),
        "",
        ">=",
        0.85,
    ),
    # The same two figures on the half of the set held out while the extraction was tuned
    # (``bench.answers.half``): reported, not a target of their own.
    Target(
        21,
        "Citation precision, extractive, held-out test half",
        "answers",
        _path("modes", "extractive", "halves", "test", "citation_precision"),
        "",
    ),
    Target(
        21,
        "Abstention balanced accuracy, extractive, held-out test half",
        "answers",
        _path("modes", "extractive", "halves", "test", "abstention", "balanced_accuracy"),
        "",
    ),
    Target(
        21,
        "Answer correctness, embedded default mode (extractive resolved)",
        "answers",
        _path("modes", "default", "correctness"),
        "",
    ),
    Target(
        21,
        "Answer correctness, generative with SmolLM2-135M (gate on)",
        "answers",
        _path("modes", "generative:smollm2-135m", "correctness"),
        "",
    ),
    Target(
        21,
        "Answer p50 latency, embedded default",
        "answers",
        _path("modes", "default", "latency", "p50_ms"),
        "ms",
        "<=",
        3000,
    ),
    # Retrieval and cache quality on public data (#22).
    *(
        Target(
            22,
            f"{metric}, {name}, {label}",
            "retrieval_quality",
            _path("sets", key, "variants", "contextual:plural-stem", variant, field),
            "",
        )
        for name, key in (
            ("public SQuAD paragraphs", "squad-paragraphs"),
            ("public SQuAD answers set (88 documents)", "squad"),
        )
        for metric, field in (("Recall@10", "recall_at_10"), ("MRR@10", "mrr_at_10"))
        for label, variant in (
            ("dense alone", "dense"),
            ("sparse alone", "sparse"),
            ("hybrid as shipped", "hybrid_in_use"),
        )
    ),
    Target(
        22,
        "Search p50 at 100k chunks, 10% visible, with the query embedding",
        "vectorstore",
        _corpus(100_000, "p50_ms"),
        "ms",
        "<=",
        10,
    ),
    Target(
        22,
        "Search p99 at 100k chunks, 10% visible, with the query embedding",
        "vectorstore",
        _corpus(100_000, "p99_ms"),
        "ms",
        "<=",
        25,
    ),
    Target(
        22,
        "Engine's own query p50 at 100k chunks (same run)",
        "vectorstore",
        _at("runs", "points_in_tenant", 100_000, "engine_only_optimized", "p50_ms"),
        "ms",
    ),
    Target(
        22,
        "Semantic cache hit precision, public pairs",
        "cache",
        _path("sets", "public", "served", "precision"),
        "",
        ">=",
        0.97,
    ),
    Target(
        22,
        "Semantic cache same-answer recall, public pairs",
        "cache",
        _path("sets", "public", "served", "recall"),
        "",
    ),
    # #24 Prompt injection on public data (bench/data/injection_public, held-out half).
    Target(
        24,
        "Direct-injection detection, public set, held-out half",
        "injection",
        _path("heldout", "direct", "guard", "detection"),
        "",
        ">=",
        0.90,
    ),
    Target(
        24,
        "Direct-injection false-positive rate, public set, held-out half",
        "injection",
        _path("heldout", "direct", "guard", "false_positive_rate"),
        "",
        "<=",
        0.02,
    ),
    Target(
        24,
        "Direct-injection detection, held-out, without the message's embedding (words alone)",
        "injection",
        _path("heldout", "direct", "without_embedding", "detection"),
        "",
    ),
    Target(
        24,
        "Direct-injection false-positive rate, held-out, without the message's embedding",
        "injection",
        _path("heldout", "direct", "without_embedding", "false_positive_rate"),
        "",
    ),
    Target(
        24,
        "Indirect attacks succeeding (extractive answer repeats it), held-out, quarantine",
        "injection",
        _path("heldout", "indirect", "quarantine", "succeeded"),
        "",
        "<=",
        0,
    ),
    Target(
        24,
        "Indirect attacks succeeding, held-out, wrap",
        "injection",
        _path("heldout", "indirect", "wrap", "succeeded"),
        "",
        "<=",
        0,
    ),
    Target(
        24,
        "Planted instructions not flagged (would reach a model's prompt), held-out",
        "injection",
        _path("heldout", "indirect", "quarantine", "exposed_to_a_model"),
        "chunks",
    ),
    Target(
        24,
        "Injection guard p50 per message",
        "injection",
        _path("heldout", "direct", "cost_per_message_us", "p50"),
        "µs",
    ),
    Target(
        24,
        "Direct-injection detection, tuning half (rules and classifiers fitted here)",
        "injection",
        _path("tuning", "direct", "guard", "detection"),
        "",
    ),
    # Embedding throughput (the bottleneck of ingest, #5), figures only.
    Target(
        5,
        "MiniLM int8 embedder, ~200-token chunks",
        "embedding",
        _path("embedder", "chunk_200_tokens_per_s"),
        "chunks/s",
    ),
)


def evaluate(results: Mapping[str, Results]) -> list[tuple[Target, float | None, bool | None]]:
    """Each target with its measured figure (None when its benchmark did not produce it)."""
    rows = []
    for target in sorted(TARGETS, key=lambda t: t.issue):
        doc = results.get(target.script)
        value = target.read(doc) if doc is not None else None
        rows.append((target, value, target.met(value)))
    return rows
