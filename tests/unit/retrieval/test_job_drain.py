"""``JobRunner.drain`` on taskiq's in-process broker, through its public ``wait_all`` only: it
returns once every job has run, including the jobs that running jobs queue."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.jobs.runner import JobRunner


async def test_drain_waits_for_jobs_and_the_jobs_they_queue() -> None:
    runner = JobRunner(registry=Any, tenant_route=Any, system=Any)  # type: ignore[arg-type]
    finished: list[str] = []

    async def run(tenant_id: str, job_id: str, trace_context: dict[str, str]) -> None:
        await asyncio.sleep(0.02)
        if job_id.startswith("first"):
            # A job that queues another as it ends (as a requeue after an outage does).
            await runner._publish(tenant_id, job_id.replace("first", "second"), trace_context)
        finished.append(job_id)

    runner._run = run  # type: ignore[method-assign]
    await runner.startup()
    try:
        await runner._publish("t", "first-a", {})
        await runner._publish("t", "first-b", {})
        await runner.drain()
        assert sorted(finished) == ["first-a", "first-b", "second-a", "second-b"]
        await runner.drain()  # nothing left: returns at once
    finally:
        await runner.shutdown()
