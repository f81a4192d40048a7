"""The default small-model classifier, asked only when the router's features are inconclusive.

It asks the tenant's own small-tier endpoint (its region's, or its BYO model) for one word and
maps it to a tier. It is bounded by a short timeout and never fails a request: any problem means
"cannot tell". Its tokens are platform overhead, not charged to the tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.adapters.base import ModelMessage, ProviderError, ProviderRequest
from gateway.fleet import Endpoint

_PROMPT = (
    "Rate how hard the following request is for an AI assistant. Answer with exactly one "
    "word: simple, moderate or complex."
)
_WORDS = {"simple": "small", "easy": "small", "moderate": "mid", "medium": "mid"}
_WORDS |= {"complex": "frontier", "hard": "frontier", "difficult": "frontier"}


class SmallModelClassifier:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def classify(self, question: str, small: Sequence[Endpoint]) -> str | None:
        for endpoint in small:
            if not endpoint.breaker.allow():
                continue
            request = ProviderRequest(
                model=endpoint.model,
                messages=(
                    ModelMessage("system", _PROMPT),
                    ModelMessage("user", question[:2000]),
                ),
                max_tokens=3,
                temperature=0.0,
            )
            try:
                async with asyncio.timeout(self.timeout):
                    completion = await endpoint.provider.complete(request)
            except (ProviderError, TimeoutError):
                endpoint.breaker.release_probe()
                return None
            endpoint.breaker.release_probe()
            for word in completion.text.lower().replace(".", " ").split():
                if word in _WORDS:
                    return _WORDS[word]
            return None
        return None
