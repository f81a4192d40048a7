from __future__ import annotations

from kernel.errors import Forbidden, InvalidInput, NotFound, ServiceUnavailable, TooManyRequests


class ModelUnavailable(ServiceUnavailable):
    """Every endpoint the request could use failed or is shedding load (circuit open)."""

    code = "model_unavailable"
    title = "Model unavailable"

    def __init__(self, tier: str, tried: int) -> None:
        super().__init__(
            f"No model endpoint of tier {tier!r} (or its fallback) could serve the request; "
            "retry later.",
            tier=tier,
            endpoints_tried=tried,
        )


class ModelProviderRejected(ServiceUnavailable):
    code = "model_provider_rejected"
    title = "Model provider rejected the request"

    def __init__(self, endpoint: str, status: int | None) -> None:
        super().__init__(
            f"The model endpoint {endpoint!r} refused the request"
            + (f" (HTTP {status})" if status else "")
            + "; check its configuration and credentials.",
            endpoint=endpoint,
        )


class NoModelsConfigured(ServiceUnavailable):
    code = "no_models_configured"
    title = "No model endpoints"

    def __init__(self, region: str) -> None:
        super().__init__(
            f"Region {region!r} has no model endpoint this tenant's policy allows.",
            region=region,
        )


class UnknownModel(InvalidInput):
    code = "unknown_model"
    title = "Unknown model"

    def __init__(self, model: str) -> None:
        super().__init__(
            "model must be 'auto', a tier (small, mid, frontier) or a configured model alias.",
            model=model[:64],
        )


class TierForbidden(Forbidden):
    code = "model_tier_forbidden"
    title = "Model tier forbidden"

    def __init__(self, tier: str) -> None:
        super().__init__(f"The tenant's model policy does not allow tier {tier!r}.", tier=tier)


class InputTooLong(InvalidInput):
    code = "input_too_long"
    title = "Input exceeds the token budget"

    def __init__(self, tokens: int, budget: int) -> None:
        super().__init__(
            f"The input needs about {tokens} tokens after trimming older messages; the budget is "
            f"{budget}.",
            input_tokens=tokens,
            budget=budget,
        )


class QuotaExhausted(TooManyRequests):
    code = "quota_exhausted"
    title = "Quota exhausted"

    def __init__(self, scope: str, period: str, retry_after: int) -> None:
        super().__init__(
            f"The {scope} {period} model quota is exhausted.",
            retry_after=retry_after,
            scope=scope,
            period=period,
        )


class RateLimited(TooManyRequests):
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            f"Too many model requests for this {scope}; slow down.",
            retry_after=retry_after,
            scope=scope,
        )


class BatchNotFound(NotFound):
    code = "batch_not_found"
    title = "Batch not found"

    def __init__(self) -> None:
        super().__init__("No such batch in this tenant.")


class ByoModelNotFound(NotFound):
    code = "byo_model_not_found"
    title = "BYO model not found"

    def __init__(self, tier: str) -> None:
        super().__init__(f"This tenant has no own model for tier {tier!r}.", tier=tier)
