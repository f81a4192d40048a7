"""Runs an evaluation set through a Bulwark deployment's HTTP API, as the tenant's own client
would: the set's documents are ingested (versioned by ``external_id``, so a rerun adds nothing),
then every question is asked once per tier through ``POST /v1/chat`` with the tier pinned and the
semantic cache bypassed, so each answer is a fresh trip through DLP, retrieval, the gateway,
groundedness and audit. The chat sessions the run creates are deleted afterwards."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from app.eval.scoring import quality
from app.eval.sets import EvalCase, EvalDocument, EvalSet


class Deployment(Protocol):
    """What the runner needs of the deployment (``app.eval.adapters.BulwarkApi``)."""

    async def check(self) -> None: ...
    async def ingest(self, documents: list[EvalDocument]) -> None: ...
    async def ask(self, question: str, tier: str) -> tuple[int, dict[str, Any]]: ...
    async def forget(self, session_id: str) -> None: ...


class CaseResult(msgspec.Struct):
    case_id: str
    tier: str
    status: int
    quality: float
    groundedness: float | None
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_ms: float
    served_by: str | None
    mode: str | None
    citations: int
    answer: str | None
    error: str | None = None


class TierSummary(msgspec.Struct):
    tier: str
    cases: int
    errors: int
    quality: float
    groundedness: float | None
    cost_usd_total: float
    cost_usd_per_case: float
    input_tokens: int
    output_tokens: int
    latency_ms_p50: float
    latency_ms_p95: float
    on_frontier: bool = False


class EvalReport(msgspec.Struct):
    set_name: str
    tiers: list[TierSummary]
    cases: list[CaseResult]


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


async def _ask(api: Deployment, case: EvalCase, tier: str) -> tuple[CaseResult, str | None]:
    started = time.perf_counter()
    status, body = await api.ask(case.question, tier)
    latency = round((time.perf_counter() - started) * 1000, 2)
    if status != 200:
        failed = CaseResult(
            case.id, tier, status, 0.0, None, 0.0, 0, 0, latency, None, None, 0, None,
            error=str(body.get("code") or status),
        )  # fmt: skip
        return failed, None
    usage, model = body["usage"], body["model"]
    result = CaseResult(
        case_id=case.id,
        tier=tier,
        status=200,
        quality=round(quality(body["answer"], case.reference, case.rubric), 4),
        groundedness=body["grounded"]["score"],
        cost_usd=usage["cost_usd"],
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        latency_ms=latency,
        served_by=model.get("tier"),
        mode=body.get("mode"),
        citations=len(body["citations"]),
        answer=body["answer"],
    )
    return result, body["session_id"]


def summarise(tier: str, results: list[CaseResult]) -> TierSummary:
    answered = [r for r in results if r.status == 200]
    grounded = [r.groundedness for r in answered if r.groundedness is not None]
    cost = sum(r.cost_usd for r in results)
    return TierSummary(
        tier=tier,
        cases=len(results),
        errors=len(results) - len(answered),
        quality=round(sum(r.quality for r in results) / len(results), 4),
        groundedness=round(sum(grounded) / len(grounded), 4) if grounded else None,
        cost_usd_total=round(cost, 8),
        cost_usd_per_case=round(cost / len(results), 8),
        input_tokens=sum(r.input_tokens for r in results),
        output_tokens=sum(r.output_tokens for r in results),
        latency_ms_p50=_percentile([r.latency_ms for r in results], 0.5),
        latency_ms_p95=_percentile([r.latency_ms for r in results], 0.95),
    )


def mark_frontier(tiers: list[TierSummary]) -> None:
    """The quality/cost frontier: tiers no other tier beats on quality at no more cost."""
    for tier in tiers:
        tier.on_frontier = not any(
            other is not tier
            and other.cost_usd_per_case <= tier.cost_usd_per_case
            and other.quality >= tier.quality
            and (other.cost_usd_per_case, other.quality) != (tier.cost_usd_per_case, tier.quality)
            for other in tiers
        )


async def run_eval(api: Deployment, eval_set: EvalSet, tiers: Sequence[str]) -> EvalReport:
    await api.check()
    await api.ingest(eval_set.documents)
    results: list[CaseResult] = []
    sessions: list[str] = []
    try:
        for tier in tiers:
            for case in eval_set.cases:
                result, session_id = await _ask(api, case, tier)
                results.append(result)
                if session_id:
                    sessions.append(session_id)
    finally:
        for session_id in sessions:
            await api.forget(session_id)
    summaries = [summarise(t, [r for r in results if r.tier == t]) for t in tiers]
    mark_frontier(summaries)
    return EvalReport(eval_set.name, summaries, results)
