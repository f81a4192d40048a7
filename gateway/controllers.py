"""Gateway routes: the OpenAI-compatible chat completions endpoint, batches, quotas, model
policy, BYO models and usage."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.adapters.base import ModelMessage
from gateway.admin import GatewayAdminService, UsageService
from gateway.batch import BatchService
from gateway.schemas import (
    BatchCreate,
    BatchRead,
    ByoModelList,
    ByoModelRead,
    ByoModelWrite,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    Choice,
    CompletionUsage,
    ModelPolicyBody,
    Quotas,
    RouteInfo,
    Tier,
    UsageReport,
)
from gateway.services import Caller, GatewayRequest, GatewayService, GatewayStream
from kernel.api import SECURED, problem_responses, sse_event
from kernel.deps import provide_tenant_context
from kernel.guards import requires_role, requires_tenant
from kernel.observability import ensure_request_id
from kernel.tenancy import Role, TenantContext

_ADMIN = [requires_role(Role.TENANT_ADMIN)]


def gateway_request(data: ChatCompletionRequest) -> GatewayRequest:
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return GatewayRequest(
        messages=tuple(ModelMessage(m.role, m.content) for m in data.messages),
        model=data.model,
        max_tokens=data.max_completion_tokens or data.max_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        stop=stop,
        sources=data.bulwark_sources or 0,
        reasoning=data.reasoning_effort,
    )


def _route_headers(tier: str, reason: str, endpoint: str) -> dict[str, str]:
    return {
        "X-Bulwark-Tier": tier,
        "X-Bulwark-Route-Reason": reason,
        "X-Bulwark-Endpoint": endpoint,
    }


async def _sse_events(opened: GatewayStream, include_usage: bool) -> AsyncIterator[bytes]:
    chunk_id = f"chatcmpl-{opened.call_id.hex}"
    created = int(time.time())
    base = {"id": chunk_id, "object": "chat.completion.chunk", "created": created}
    base["model"] = opened.model
    first = True
    async for event in opened.events:
        if event.kind == "delta":
            delta: dict[str, str] = {"content": event.text}
            if first:
                delta["role"] = "assistant"
                first = False
            yield sse_event(
                {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            )
            continue
        usage = event.usage
        usage_body = (
            {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            }
            if usage
            else None
        )
        route = {
            "tier": opened.decision.tier,
            "route_reason": opened.decision.reason,
            "endpoint": opened.endpoint,
            "fallbacks": opened.fallbacks,
            "cost_usd": event.cost_microdollars / 1_000_000,
            "call_id": str(opened.call_id),
        }
        if event.kind == "error":
            yield sse_event(
                {
                    "error": {
                        "code": event.error_code,
                        "message": "The model stream broke off; the partial answer was billed.",
                        "type": "model_error",
                    },
                    "usage": usage_body,
                    "bulwark": route,
                },
                event="error",
            )
            return
        yield sse_event(
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": event.finish_reason}],
                "bulwark": route,
            }
        )
        if include_usage:
            yield sse_event({**base, "choices": [], "usage": usage_body})
    yield b"data: [DONE]\n\n"


class GatewayController(Controller):
    path = "/v1/gateway"
    tags = ["gateway"]
    security = SECURED
    guards = [requires_tenant]
    # No request unit of work here: the gateway opens its own short transactions, so no
    # database transaction stays open while a model generates.

    @post(
        "/chat/completions",
        status_code=200,
        responses=problem_responses(422, 429),
        summary="OpenAI-compatible chat completion through the gateway (stream or not)",
    )
    async def chat_completions(
        self,
        request: Request[Any, Any, Any],
        gateway: NamedDependency[GatewayService],
        data: JSONBody[ChatCompletionRequest],
    ) -> Response[Any]:
        # One dependency, the principal read here: Litestar resolves two or more dependencies of
        # the same level in a task group of their own, a cost on the gateway's hot path.
        ctx = provide_tenant_context(request)
        caller = Caller.of(ctx, ensure_request_id(request.scope))
        call = gateway_request(data)
        if data.stream:
            opened = await gateway.stream(ctx, call, caller)
            include_usage = data.stream_options is not None and data.stream_options.include_usage
            return Stream(
                _sse_events(opened, include_usage),
                media_type="text/event-stream",
                headers={
                    "Cache-Control": "no-cache",
                    **_route_headers(opened.decision.tier, opened.decision.reason, opened.endpoint),
                },
            )
        done = await gateway.complete(ctx, call, caller, settle="background")
        body = ChatCompletion(
            id=f"chatcmpl-{done.call_id.hex}",
            created=int(time.time()),
            model=done.model,
            choices=[
                Choice(
                    index=0,
                    message=ChatMessageOut(role="assistant", content=done.text),
                    finish_reason=done.finish_reason or "stop",
                )
            ],
            usage=CompletionUsage(
                prompt_tokens=done.usage.input_tokens,
                completion_tokens=done.usage.output_tokens,
                total_tokens=done.usage.input_tokens + done.usage.output_tokens,
            ),
            bulwark=RouteInfo(
                tier=done.decision.tier,
                route_reason=done.decision.reason,
                endpoint=done.endpoint,
                fallbacks=done.fallbacks,
                cost_usd=done.cost_microdollars / 1_000_000,
                call_id=done.call_id,
            ),
        )
        return Response(
            content=body,
            headers=_route_headers(done.decision.tier, done.decision.reason, done.endpoint),
        )


class GatewayBatchController(Controller):
    path = "/v1/gateway/batches"
    tags = ["gateway"]
    security = SECURED
    guards = [requires_tenant]

    @post(
        "/",
        status_code=202,
        responses=problem_responses(422),
        summary="Queue non-interactive model calls (batch prices, same quotas)",
    )
    async def create_batch(
        self, batches: NamedDependency[BatchService], data: JSONBody[BatchCreate]
    ) -> BatchRead:
        batch = await batches.submit(data)
        return BatchRead(id=batch.id, status=batch.status, item_count=batch.item_count, items=[])

    @get("/{batch_id:uuid}", responses=problem_responses(404), summary="A batch and its results")
    async def get_batch(
        self, batches: NamedDependency[BatchService], batch_id: FromPath[uuid.UUID]
    ) -> BatchRead:
        return await batches.read(batch_id)


class QuotaController(Controller):
    path = "/v1/admin/quotas"
    tags = ["gateway admin"]
    security = SECURED
    guards = _ADMIN

    @get("/", responses=problem_responses(), summary="Model quotas and request-rate limits")
    async def get_quotas(self, gateway_admin: NamedDependency[GatewayAdminService]) -> Quotas:
        return await gateway_admin.quotas()

    @put("/", responses=problem_responses(422), summary="Replace the quotas and rate limits")
    async def put_quotas(
        self, gateway_admin: NamedDependency[GatewayAdminService], data: JSONBody[Quotas]
    ) -> Quotas:
        return await gateway_admin.set_quotas(data)


class ModelPolicyController(Controller):
    path = "/v1/admin/model-policy"
    tags = ["gateway admin"]
    security = SECURED
    guards = _ADMIN

    @get("/", responses=problem_responses(), summary="The tenant's model tier policy")
    async def get_model_policy(
        self, gateway_admin: NamedDependency[GatewayAdminService]
    ) -> ModelPolicyBody:
        return await gateway_admin.model_policy()

    @put("/", responses=problem_responses(422), summary="Pin, allow or forbid tiers")
    async def put_model_policy(
        self, gateway_admin: NamedDependency[GatewayAdminService], data: JSONBody[ModelPolicyBody]
    ) -> ModelPolicyBody:
        return await gateway_admin.set_model_policy(data)


class ByoModelController(Controller):
    path = "/v1/admin/byo-models"
    tags = ["gateway admin"]
    security = SECURED
    guards = _ADMIN

    @get("/", responses=problem_responses(), summary="The tenant's own model endpoints")
    async def list_byo_models(
        self, gateway_admin: NamedDependency[GatewayAdminService]
    ) -> ByoModelList:
        return ByoModelList(items=await gateway_admin.byo_models())

    @put(
        "/{tier:str}",
        responses=problem_responses(422),
        summary="Bring your own model for a tier (the API key is sealed, never returned)",
    )
    async def put_byo_model(
        self,
        gateway_admin: NamedDependency[GatewayAdminService],
        tier: FromPath[Tier],
        data: JSONBody[ByoModelWrite],
    ) -> ByoModelRead:
        return await gateway_admin.put_byo_model(tier, data)

    @delete("/{tier:str}", status_code=204, responses=problem_responses(404))
    async def delete_byo_model(
        self, gateway_admin: NamedDependency[GatewayAdminService], tier: FromPath[Tier]
    ) -> None:
        await gateway_admin.remove_byo_model(tier)


def provide_usage(
    db: NamedDependency[AsyncSession], ctx: NamedDependency[TenantContext]
) -> UsageService:
    return UsageService(db, ctx, everyone=ctx.has_role(Role.TENANT_ADMIN))


GroupBy = Annotated[
    Literal["day", "model", "user", "tier"],
    QueryParameter(description="How to group the ledger."),
]
# A string, parsed by the service: as a ``date`` parameter Litestar would also accept other
# shapes than the one the OpenAPI document promises. The pattern admits the months and days of
# the calendar and years 0001-9999; ``format: date`` says the rest (no 30 February).
Day = Annotated[
    str | None,
    QueryParameter(
        description="YYYY-MM-DD (UTC)",
        pattern=r"^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(?:0[1-9]|1[0-2])"
        r"-(?:0[1-9]|[12][0-9]|3[01])$",
        format="date",
        max_length=10,
    ),
]


async def provide_settled_context(
    request: Request[Any, Any, Any], gateway: NamedDependency[GatewayService]
) -> TenantContext:
    """The caller, once this process's pending settlements have landed: a usage read's unit of
    work (``db``, which needs ``ctx``) opens after them, so a caller reads what it has just
    spent."""
    await gateway.settled()
    return provide_tenant_context(request)


class UsageController(Controller):
    path = "/v1/usage"
    tags = ["gateway"]
    security = SECURED
    guards = [requires_tenant]
    dependencies = {
        "ctx": Provide(provide_settled_context),
        "usage": Provide(provide_usage, sync_to_thread=False),
    }

    @get(
        "/",
        responses=problem_responses(422),
        summary="Model usage and cost from the ledger (admins: everyone; others: their own)",
    )
    async def get_usage(
        self,
        usage: NamedDependency[UsageService],
        group_by: GroupBy = "day",
        since: Day = None,
        until: Day = None,
    ) -> UsageReport:
        return await usage.report(group_by, since, until)
