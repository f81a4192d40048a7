"""Upstream outages seen by the load-and-fault run (``make loadtest``), each pinned down here:
PostgreSQL going away under an open unit of work, a failure at commit time, a job whose
database is down, and a 503 that always says when to come back (Retry-After).

PostgreSQL is reached through the harness's cuttable TCP proxy, so the shared server itself is
never stopped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.runtime import Runtime
from auth.context import system_context
from auth.scim.http import SCIM_EXCEPTION_HANDLERS
from bench._server import bench_tenant, free_port
from kernel.errors import EXCEPTION_HANDLERS
from kernel.jobs.models import Job
from kernel.jobs.repositories import JobRepository
from kernel.jobs.schemas import JobStatus
from kernel.tenancy import TenantContext, TenantRoute
from residency.database import Database
from residency.errors import DatabaseUnavailable
from tests.load.proxy import CuttableProxy
from tests.support.deployments import drop_deployment, make_deployment, pg_url, require_postgres


@pytest.fixture
async def pg_proxy() -> AsyncIterator[CuttableProxy]:
    dsn = make_url(require_postgres())
    proxy = CuttableProxy(free_port(), dsn.host or "127.0.0.1", dsn.port or 5432)
    await proxy.open()
    yield proxy
    await proxy.cut()


def through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(port=proxy.listen_port).render_as_string(hide_password=False)


@pytest.mark.postgres
async def test_postgres_dropping_an_open_unit_of_work_is_an_outage(
    pg_proxy: CuttableProxy,
) -> None:
    database = Database("eu", through(pg_proxy, pg_url("postgres")))
    try:
        with pytest.raises(DatabaseUnavailable):
            async with database.transaction(None) as session:
                await session.execute(text("SELECT 1"))
                await pg_proxy.cut()  # the server goes away before the commit
        await pg_proxy.open()
        async with database.transaction(None) as session:  # and comes back
            assert (await session.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await database.dispose()


async def _commit_fails() -> AsyncIterator[str]:
    yield "unit of work"
    raise DatabaseUnavailable("eu")  # raised while the request's unit of work commits


@get("/v1/thing", dependencies={"db": Provide(_commit_fails)})
async def thing(db: NamedDependency[str]) -> dict[str, str]:
    return {"used": db}


@get("/scim/v2/t/Users", dependencies={"db": Provide(_commit_fails)})
async def scim_users(db: NamedDependency[str]) -> dict[str, str]:
    return {"used": db}


@pytest.mark.parametrize(
    ("path", "handlers", "media_type"),
    [
        ("/v1/thing", EXCEPTION_HANDLERS, "application/problem+json"),
        ("/scim/v2/t/Users", SCIM_EXCEPTION_HANDLERS, "application/scim+json"),
    ],
)
async def test_an_outage_at_commit_is_a_503_with_retry_after(
    path: str, handlers: dict[object, object], media_type: str
) -> None:
    # Litestar reports failures of dependency clean-up as an exception group.
    app = Litestar([thing, scim_users], exception_handlers=handlers)  # type: ignore[arg-type]
    async with AsyncTestClient(app=app) as client:
        response = await client.get(path)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["retry-after"] == "5"
    assert "Traceback" not in response.text


@pytest.mark.postgres
async def test_a_job_whose_database_is_down_goes_back_on_the_queue(
    pg_proxy: CuttableProxy, tmp_path: Path
) -> None:
    deployment = await make_deployment("postgres", tmp_path)
    eu = deployment.settings.regions["eu"]
    regions = {
        **deployment.settings.regions,
        "eu": eu.model_copy(update={"database_url": through(pg_proxy, eu.database_url)}),
    }
    runtime = Runtime.build(deployment.settings.model_copy(update={"regions": regions}))
    runtime.jobs.outage_delay = 0.2
    ran: list[uuid.UUID] = []

    async def probe(ctx: TenantContext, job: Job) -> None:
        ran.append(job.id)

    runtime.jobs.handler("outage-probe", probe)
    try:
        ctx = system_context(TenantRoute.of(await bench_tenant(runtime, "outage")))
        async with runtime.registry.tenant_transaction(ctx) as session:
            job = await JobRepository(session, ctx).add(
                Job(id=uuid.uuid4(), kind="outage-probe", status=JobStatus.QUEUED)
            )
        await pg_proxy.cut()
        await runtime.jobs.enqueue(ctx.tenant_id, job.id)
        await asyncio.sleep(1.0)  # the job meets the outage, perhaps more than once
        assert ran == []
        await pg_proxy.open()
        await asyncio.wait_for(runtime.jobs.drain(), timeout=30)
        async with runtime.registry.tenant_transaction(ctx) as session:
            stored = await JobRepository(session, ctx).get(job.id)
        assert stored is not None and stored.status == JobStatus.SUCCEEDED
        assert ran == [job.id]  # once, not lost and not twice
    finally:
        await runtime.dispose()
        await drop_deployment(deployment)
