"""A sampled LLM-as-judge: a stronger tier grades a share of generative answers 1-5 for how far
their sources support them, after the answer was sent. The score feeds a histogram (a
hallucination signal over time); the texts go to the tenant's own region's model, like the
answer did, and are never logged. The calls are billed to the tenant on the batch track."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence

import structlog
from prometheus_client import Histogram

from gateway.adapters.base import ModelMessage
from gateway.services import Caller, GatewayRequest, GatewayService
from kernel.tenancy import TenantContext

log = structlog.get_logger("bulwark.judge")

JUDGE_SCORE = Histogram(
    "bulwark_llm_judge_score",
    "Sampled LLM-as-judge grade of generative answers: 5 fully supported by the sources, 1 not.",
    ["tier"],
    buckets=(1, 2, 3, 4, 5),
)
JUDGE_PROMPT = (
    "You grade answers. Given a question, numbered sources and an answer, reply with one digit "
    "from 1 to 5: 5 when every statement of the answer is supported by the sources, 1 when none "
    "is. Reply with the digit only."
)
_DIGIT = re.compile(r"[1-5]")


class AnswerJudge:
    def __init__(self, gateway: GatewayService, *, rate: float, model: str) -> None:
        self.gateway = gateway
        self.rate = rate
        self.model = model
        self._pending: set[asyncio.Task[None]] = set()

    def maybe(
        self,
        ctx: TenantContext,
        *,
        question: str,
        sources: Sequence[str],
        answer: str,
        tier: str | None,
    ) -> None:
        if self.rate <= 0 or random.random() >= self.rate:  # noqa: S311 - sampling, not security
            return
        task = asyncio.create_task(self._judge(ctx, question, list(sources), answer, tier))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _judge(
        self, ctx: TenantContext, question: str, sources: list[str], answer: str, tier: str | None
    ) -> None:
        numbered = "\n".join(f"[{n}] {text}" for n, text in enumerate(sources, start=1))
        content = f"Question: {question}\n\nSources:\n{numbered}\n\nAnswer: {answer}"
        try:
            result = await self.gateway.complete(
                ctx,
                GatewayRequest(
                    messages=(ModelMessage("system", JUDGE_PROMPT), ModelMessage("user", content)),
                    model=self.model,
                    max_tokens=4,
                ),
                Caller(ctx.user_id, ctx.credential_id, track="batch", route="judge"),
            )
        except Exception as exc:  # a failed grade is no grade; the answer was already sent
            log.info("judge_failed", error=type(exc).__name__)
            return
        found = _DIGIT.search(result.text)
        if found is not None:
            JUDGE_SCORE.labels(tier or "unknown").observe(int(found.group(0)))

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
