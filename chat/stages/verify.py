"""Verify: the one place that runs the answer gate (``chat.gate``) and the sampled judge.

Every sentence of a generative answer — JSON or streamed — is judged against the sources the
asker was given before it is delivered; a sentence that fails is never sent. The other stages
ask this module, never the gate: ``Verifier.judged`` for a whole answer as it would be delivered
(``generate``), ``Verifier.sentence`` for one streamed sentence (``deliver.StreamingOutbound``),
``holds`` for the gate's last word in the closing transaction, and ``scored`` for an extractive
answer (made of the sources' own sentences: scored, not gated). What happens on a refusal —
one revision, then the cited extract, or an abstention — is ``generate``'s and the pipeline's;
the gate's outcomes and the sentences it kept back are counted here.

After an answer was delivered, ``sample`` hands a share of them to the LLM-as-judge
(``chat.judge``): a hallucination signal over time, never a gate.
"""

from __future__ import annotations

from opentelemetry import trace

from chat import gate
from chat.gate import GATE_OUTCOMES, AnswerGate, count_blocked
from chat.schemas import ChatResponse
from chat.turn import ChatDeps, ChatTurn
from retrieval.grounding import Grounding, check
from retrieval.prompt import SYSTEM_PROMPT

_tracer = trace.get_tracer("bulwark.chat")


class Ungrounded(Exception):
    """A streamed sentence failed the answer gate: it is not sent, and the stream stops."""

    def __init__(self, failing: Grounding) -> None:
        super().__init__("ungrounded sentence")
        self.failing = failing


class Verifier:
    """The answer gate over one turn's sources, with the tenant's ``min_support``."""

    __slots__ = ("gate",)

    def __init__(self, deps: ChatDeps, turn: ChatTurn) -> None:
        self.gate = AnswerGate(
            turn.sources,
            SYSTEM_PROMPT,
            turn.policy.min_support,
            deps.sentence_vectors(),
        )

    async def judged(self, text: str) -> Grounding:
        """The gate's judgement of an answer as it would be delivered, as a trace span."""
        with _tracer.start_as_current_span("groundedness") as span:
            grounding = await self.gate.judge(text)
            span.set_attribute("bulwark.groundedness", grounding.score)
        return grounding

    async def sentence(self, text: str) -> None:
        """Raises ``Ungrounded`` unless the streamed ``text`` (whole sentences, scanned as
        they would be sent) is backed by what it cites."""
        judged = await self.gate.judge(text)
        if not judged.passed:
            raise Ungrounded(judged)

    def passes(self, grounding: Grounding) -> bool:
        """Deliverable as it is: something was said, and every factual sentence is backed."""
        return self.gate.passes(grounding)


def holds(grounding: Grounding) -> bool:
    """The gate's last word on a generative answer in the closing transaction: ``grounding``
    judged what is delivered as it was scanned, so a failure is never expected; the gate holds
    all the same (the answer is then extractive, counted as a fallback)."""
    if grounding.passed and grounding.checks:
        return True
    refused(grounding)
    outcome("fallback")
    return False


def refused(grounding: Grounding) -> None:
    """Count the sentences the gate kept from the user, by reason."""
    count_blocked(grounding.failing)


def outcome(name: str) -> None:
    """Count what the gate did to a generative answer: passed, revised, fallback, withheld."""
    GATE_OUTCOMES.labels(name).inc()


def critique(grounding: Grounding) -> str:
    """The revision request naming the sentences the gate refused, and why."""
    return gate.critique(grounding)


def scored(text: str, sources: list[str]) -> Grounding:
    """The groundedness of an extractive answer or an abstention (no gate: its sentences are
    the sources' own)."""
    return check(text, sources)


def sample(deps: ChatDeps, turn: ChatTurn, response: ChatResponse) -> None:
    """A share of delivered generative answers to the LLM-as-judge, after the answer was sent."""
    if deps.judge is not None:
        deps.judge.maybe(
            deps.ctx,
            question=turn.question,
            sources=turn.sources,
            answer=response.answer,
            tier=response.model.tier,
        )
