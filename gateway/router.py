"""Tier routing (the branch pattern): cheap deterministic features first, a classifier only when
they are inconclusive, then the tenant's model policy and what the region actually serves.

Features: requested reasoning effort, prompt length (estimated tokens), number of retrieved
sources, and the question type of the last user message (greeting/lookup vs analysis). The
classifier is pluggable (``TierClassifier``); the default asks the small tier for one word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.errors import NoModelsConfigured, TierForbidden
from gateway.fleet import TIERS, Endpoint
from kernel.settings import RouterSettings

_SIMPLE = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|okay)\b"
    r"|\b(what is|what's|who is|who was|when (is|was|did)|where (is|was)|define|definition of|"
    r"translate|spell|convert|how many|how much|yes or no|capital of|synonym|acronym)\b",
    re.IGNORECASE,
)
_COMPLEX = re.compile(
    r"\b(analy[sz]e|analysis|compare|comparison|contrast|prove|proof|derive|design|architect|"
    r"trade-?offs?|step[- ]by[- ]step|reason through|evaluate|critique|assess|strategy|"
    r"implications?|root cause|debug|refactor|optimi[sz]e|multi-step|plan for|legal risk)\b",
    re.IGNORECASE,
)
_MODERATE = re.compile(
    r"\b(explain|why|how (does|do|can|should)|summari[sz]e|describe|outline|draft|rewrite|"
    r"write)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RouteInput:
    question: str  # the last user message (never logged)
    prompt_tokens: int
    sources: int = 0
    reasoning: str | None = None  # low | medium | high


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """A tenant's model policy: pin one tier, or allow a subset; name the fallback tier."""

    pinned: str | None = None
    allowed: frozenset[str] = frozenset(TIERS)
    fallback: str | None = None

    @classmethod
    def of(cls, raw: dict[str, object] | None) -> ModelPolicy:
        raw = raw or {}
        allowed = raw.get("allowed")
        forbidden = raw.get("forbidden") or []
        tiers = set(allowed) if isinstance(allowed, list) and allowed else set(TIERS)
        if isinstance(forbidden, list):
            tiers -= set(forbidden)
        pinned = raw.get("pinned")
        fallback = raw.get("fallback")
        return cls(
            pinned=pinned if isinstance(pinned, str) else None,
            allowed=frozenset(tiers),
            fallback=fallback if isinstance(fallback, str) else None,
        )


@dataclass(frozen=True, slots=True)
class RouteDecision:
    tier: str
    reason: str
    features: dict[str, object] = field(default_factory=dict)


class TierClassifier(Protocol):
    async def classify(self, question: str, small: Sequence[Endpoint]) -> str | None:
        """A tier for ``question``, or None when it cannot tell (then: mid). ``small`` are the
        tenant's own small-tier endpoints (its region's, or its BYO model)."""
        ...


def _rank(tier: str) -> int:
    return TIERS.index(tier)


def features_tier(request: RouteInput, settings: RouterSettings) -> tuple[str | None, str, str]:
    """(tier or None when inconclusive, reason, floor): the deterministic part of routing.

    The floor is the least tier length and sources demand; the question type decides above it.
    """
    floor, floor_reason = "small", ""
    if request.prompt_tokens >= settings.frontier_tokens:
        floor, floor_reason = "frontier", "long_prompt"
    elif request.prompt_tokens >= settings.mid_tokens:
        floor, floor_reason = "mid", "long_prompt"
    if request.sources >= settings.frontier_sources > 0:
        floor, floor_reason = "frontier", "many_sources"
    elif request.sources >= settings.mid_sources > 0 and _rank(floor) < _rank("mid"):
        floor, floor_reason = "mid", "many_sources"

    if request.reasoning == "high":
        return "frontier", "reasoning_high", floor
    if floor == "frontier":
        return "frontier", floor_reason, floor
    question = request.question
    if _COMPLEX.search(question):
        return "frontier", "complex_question", floor
    if _MODERATE.search(question):
        tier = "mid"
        return tier, "moderate_question", floor
    if request.reasoning == "low" or (_SIMPLE.search(question) and request.prompt_tokens < 400):
        tier = max(floor, "small", key=_rank)
        reason = "reasoning_low" if request.reasoning == "low" else "simple_question"
        return tier, reason if tier == "small" else floor_reason, floor
    if floor != "small":
        return floor, floor_reason, floor
    return None, "inconclusive", floor


class Router:
    def __init__(self, settings: RouterSettings, classifier: TierClassifier | None) -> None:
        self.settings = settings
        self.classifier = classifier

    async def route(
        self,
        request: RouteInput,
        *,
        requested: str | None,
        policy: ModelPolicy,
        available: Sequence[str],
        region: str,
        small: Sequence[Endpoint] = (),
    ) -> RouteDecision:
        """``requested``: a tier the caller named (or the tier of an alias), None for auto."""
        features: dict[str, object] = {
            "prompt_tokens": request.prompt_tokens,
            "sources": request.sources,
        }
        if request.reasoning:
            features["reasoning"] = request.reasoning
        if policy.pinned is not None:
            tier, reason = policy.pinned, "policy_pinned"
        elif requested is not None:
            if requested not in policy.allowed:
                raise TierForbidden(requested)
            tier, reason = requested, "requested"
        else:
            found, reason, floor = features_tier(request, self.settings)
            if found is None and self.classifier is not None:
                classified = await self.classifier.classify(request.question, small)
                if classified in TIERS:
                    found = max(classified, floor, key=_rank)
                    reason = "classifier"
            tier = found or "mid"
            if found is None:
                reason = "inconclusive_default"
        usable = [t for t in TIERS if t in policy.allowed and t in available]
        if policy.pinned is not None and policy.pinned in available:
            usable = [policy.pinned]
        if not usable:
            raise NoModelsConfigured(region)
        if tier not in usable:
            # Nearest usable tier, preferring more capable ones.
            reason += "+policy_adjusted" if tier not in policy.allowed else "+tier_unavailable"
            above = [t for t in usable if _rank(t) > _rank(tier)]
            tier = above[0] if above else usable[-1]
        return RouteDecision(tier=tier, reason=reason, features=features)
