"""``bulwark worker``: ingestion jobs leave the API process over RabbitMQ and run in a worker.

Needs a RabbitMQ at ``BULWARK_TEST_AMQP_URL`` (``.ci/run`` sets it and fails on any skip).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from pydantic import SecretStr

from app.main import create_app
from kernel.settings import JobsSettings, Settings
from tests.support.deployments import BACKENDS, Deployment, drop_deployment, make_deployment
from tests.support.documents import search, wait_for_job
from tests.support.http import assert_problem
from tests.support.tenants import Api

AMQP_URL = os.environ.get("BULWARK_TEST_AMQP_URL")
BULWARK = Path(sys.executable).parent / "bulwark"


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``BULWARK_*`` environment variables (JSON per group, secrets revealed)."""

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(type(value))

    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    for name, value in settings.model_dump().items():
        env[f"BULWARK_{name.upper()}"] = (
            str(value) if isinstance(value, str | Path) else json.dumps(value, default=plain)
        )
    return env


@pytest.fixture(params=BACKENDS)
async def queued(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Deployment, Settings]]:
    if not AMQP_URL:
        pytest.skip("BULWARK_TEST_AMQP_URL not set")
    deployment = await make_deployment(request.param, tmp_path)
    jobs = JobsSettings(broker_url=SecretStr(AMQP_URL), queue=f"bulwark-test-{uuid.uuid4().hex}")
    yield deployment, deployment.settings.model_copy(update={"jobs": jobs})
    await drop_deployment(deployment)


async def test_worker_process_runs_ingestion_jobs_from_rabbitmq(
    queued: tuple[Deployment, Settings],
) -> None:
    _, settings = queued
    async with AsyncTestClient(app=create_app(settings)) as client:
        api = Api(client)
        tenant = await api.new_tenant("eu")
        accepted = await client.post(
            "/v1/documents",
            json={
                "title": "Lighthouse manual",
                "text": "# Lamps\n\nThe lighthouse lamp at Skerryvore is cleaned every Tuesday.",
                "acl": {"visibility": "tenant"},
            },
            headers=tenant.admin,
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]

        worker = await asyncio.create_subprocess_exec(
            str(BULWARK),
            "worker",
            env=settings_env(settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            job = await wait_for_job(api, tenant, job_id)
            assert job["status"] == "succeeded", job
            # The worker owns the region's embedded Edge shard while it runs: the API fails
            # closed with a 503 rather than opening it twice (production uses a Qdrant server).
            refused = await client.post(
                "/v1/search", json={"query": "lighthouse lamp", "top_k": 3}, headers=tenant.admin
            )
            assert_problem(refused, 503, "vector_store_unavailable")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, stderr.decode()[-2000:]

        hits = await search(api, tenant.admin, "When is the Skerryvore lamp cleaned?")
        assert hits and "every Tuesday" in hits[0]["text"]


def test_worker_refuses_to_start_without_a_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["BULWARK_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [str(BULWARK), "worker"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert b"jobs.broker_url is not set" in done.stderr
