"""The gateway's Prometheus signals: cost and tokens per tenant, route and model, attempts and
fallbacks per endpoint (tenant labels bounded, see ``kernel.observability.tenant_label``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kernel.observability import tenant_label

ATTEMPTS = Counter(
    "bulwark_llm_attempts",
    "Model calls attempted per endpoint, by outcome (ok, failed: 5xx, 429, timeout, network).",
    ["endpoint", "outcome"],
)
FALLBACKS = Counter(
    "bulwark_llm_fallbacks",
    "Calls served by an endpoint other than the first one tried (another endpoint or tier).",
    ["endpoint"],
)
TOKENS = Counter(
    "bulwark_llm_tokens",
    "Tokens of settled model calls.",
    ["tenant", "route", "model", "direction"],
)
COST = Histogram(
    "bulwark_llm_cost_usd",
    "Cost of each settled model call in US dollars.",
    ["tenant", "route", "model"],
    buckets=(0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)


def settled(tenant_id: object, route: str, model: str, tokens: tuple[int, int], usd: float) -> None:
    tenant = tenant_label(tenant_id)
    TOKENS.labels(tenant, route, model, "input").inc(tokens[0])
    TOKENS.labels(tenant, route, model, "output").inc(tokens[1])
    COST.labels(tenant, route, model).observe(usd)
