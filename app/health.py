"""Liveness, readiness and metrics endpoints (no authentication)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusController

from app.dependencies import get_runtime
from auth.middleware import EXCLUDE_FROM_AUTH
from kernel.api import ProblemDetail
from kernel.errors import PROBLEM_JSON, AppError, problem


class Liveness(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    control: str
    regions: dict[str, str]


async def _check(database: Any) -> str:
    try:
        await asyncio.wait_for(database.ping(), timeout=5)
    except (AppError, TimeoutError):
        return "unavailable"
    return "ok"


class HealthController(Controller):
    tags = ["health"]
    opt = {EXCLUDE_FROM_AUTH: True}

    @get("/healthz", summary="Liveness: the process is serving")
    async def healthz(self) -> Liveness:
        return Liveness(status="ok")

    @get(
        "/readyz",
        summary="Readiness: the control plane and every region's database answer",
        responses={
            503: ResponseSpec(
                data_container=ProblemDetail,
                media_type=PROBLEM_JSON,
                description="At least one database is unreachable",
            )
        },
    )
    async def readyz(self, request: Request[Any, Any, Any]) -> Response[Any]:
        runtime = get_runtime(request)
        planes = runtime.registry.planes()
        results = await asyncio.gather(
            _check(runtime.control), *(_check(plane.database) for plane in planes)
        )
        control, regions = results[0], dict(zip((p.name for p in planes), results[1:], strict=True))
        failing = sorted(name for name, state in regions.items() if state != "ok")
        if control != "ok":
            failing.insert(0, "control")
        if failing:
            return problem(
                request,
                status=503,
                code="not_ready",
                title="Not ready",
                detail=f"Unreachable: {', '.join(failing)}.",
                extra={"control": control, "regions": regions, "failing": failing},
            )
        return Response(Readiness(status="ready", control=control, regions=regions))


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
    opt = {EXCLUDE_FROM_AUTH: True}
