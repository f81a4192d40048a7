"""The answer gate: no sentence Bulwark cannot back reaches the user, whichever model wrote it.

Every sentence of a generative answer — JSON or streamed — is judged before it is delivered
(``retrieval.grounding``): a factual sentence must cite a source the asker was given and be
supported by it (its numbers and names in the cited text, no flipped negation, enough of its
words or meaning). A sentence that repeats the prompt's own structure — the ``<source>`` markup,
its attributes, the system prompt — fails too, whatever it cites.

The chat pipeline runs it only through its verify stage (``chat.stages.verify``). What happens
on a failure is the generate stage's and the pipeline's (``generate.revise``, ``pipeline._relay``):
one revision that names the failing sentences, then the cited extractive answer
(``mode_reason: "ungrounded_generation"``), or an abstention when extraction finds nothing.
A tenant's policy may only tighten the gate (``ChatPolicyBody.min_support`` starts at the
default threshold).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from dlp.injection import discloses
from retrieval.embeddings import Embedder
from retrieval.grounding import (
    Grounding,
    SentenceCheck,
    is_factual,
    judge,
    semantic_support,
    sentences,
    strip_unknown_citations,
    summarise,
)

# The prompt's own markup (``retrieval.prompt.render_sources``) and chat-template tokens.
_LEAK = re.compile(
    r"</?\s*sources?\b|\bn\s*=\s*\"\d+\"|\bfrom\s*=\s*\"|^\s*sources?\s*:|"
    r"<\|?(?:system|user|assistant|im_start|im_end|eot_id|start_header_id)\|?>",
    re.I,
)

# Part of every semantic-cache entry's scope: raise it when the gate gets stricter, and what
# the older gate let through is no longer served from the cache.
GATE_VERSION = 1

GATE_OUTCOMES = Counter(
    "bulwark_chat_gate_total",
    "Generative answers by what the answer gate did: passed (first try), revised (passed after "
    "the one revision), fallback (extractive or abstention: ungrounded_generation), withheld "
    "(a stream stopped before a failing sentence).",
    ["outcome"],
)
SENTENCES_BLOCKED = Counter(
    "bulwark_chat_gate_sentences_blocked_total",
    "Sentences the answer gate kept from the user, by reason (uncited, claim, negation, "
    "support, leak).",
    ["reason"],
)
ANSWER_MODES = Counter(
    "bulwark_chat_answers_total",
    "Chat answers by mode and mode_reason (every fallback and abstention is counted here).",
    ["mode", "reason"],
)


@dataclass(frozen=True, slots=True)
class AnswerGate:
    """Judges an answer's sentences against the sources the asker was given."""

    sources: Sequence[str]
    system_prompt: str
    min_support: float = 0.6
    # Paraphrases: a sentence whose claims are all in its source but whose words are not is
    # backed when its embedding is close to a cited sentence (``semantic_support``).
    embedder: Embedder | None = None

    def sentence(self, text: str) -> SentenceCheck:
        if leaked(text, self.system_prompt):
            return SentenceCheck(text, (), False, True, "leak")
        return judge(text, self.sources, lexical_threshold=self.min_support)

    async def judge(self, answer: str) -> Grounding:
        """``check``, with the semantic step (an embedding, off the event loop) for the
        sentences that need it."""
        grounding = self.check(answer)
        if self.embedder is not None and any(c.reason == "support" for c in grounding.checks):
            checks = list(grounding.checks)
            await asyncio.to_thread(semantic_support, checks, self.sources, self.embedder)
            return summarise(grounding.answer, checks)
        return grounding

    def check(self, answer: str) -> Grounding:
        """Every sentence judged on its claims, negation and words (no embedding)."""
        answer = strip_unknown_citations(answer, len(self.sources))
        return summarise(answer, [self.sentence(s) for s in sentences(answer)])

    def passes(self, grounding: Grounding) -> bool:
        """Deliverable as it is: something was said, and every factual sentence is backed."""
        return bool(grounding.checks) and grounding.passed


def leaked(sentence: str, system_prompt: str) -> bool:
    """The sentence repeats the prompt's structure or its instructions."""
    return bool(_LEAK.search(sentence)) or (
        is_factual(sentence) and discloses(sentence, system_prompt)
    )


def count_blocked(checks: Sequence[SentenceCheck]) -> None:
    for check in checks:
        if check.factual and not check.supported:
            SENTENCES_BLOCKED.labels(check.reason.split(":")[0] or "support").inc()


def critique(grounding: Grounding) -> str:
    """The revision request: the sentences the gate could not tie to a source, and why."""
    lines = [
        "Revise your answer. Keep only statements the numbered sources support, cite each "
        "with [n], copy numbers and names exactly as the source gives them, and if the sources "
        "do not answer the question say only that the documents do not answer it."
    ]
    reasons = {
        "uncited": "cites no source",
        "negation": "reverses what the source says",
        "support": "is not what the cited source says",
        "leak": "repeats the prompt instead of answering",
    }
    for check in grounding.failing:
        kind, _, token = check.reason.partition(":")
        why = f"says {token!r}, which its source does not" if kind == "claim" else reasons[kind]
        lines.append(f"- {check.text} ({why})")
    return "\n".join(lines)
