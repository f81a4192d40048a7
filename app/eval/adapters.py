"""The deployment under evaluation, reached over its HTTP API with httpx: what the runner asks
of it, and nothing else. Transport failures and refusals become ``EvalFailed``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from app.eval.sets import EvalDocument, EvalFailed


class BulwarkApi:
    def __init__(self, client: httpx.AsyncClient, api_key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {api_key}"}

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, api_key: str) -> AsyncIterator[BulwarkApi]:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=300) as client:
                yield cls(client, api_key)
        except httpx.HTTPError as exc:
            raise EvalFailed(f"cannot reach {url}: {type(exc).__name__}") from None

    async def check(self) -> None:
        me = await self.client.get("/v1/me", headers=self.headers)
        if me.status_code != 200:
            raise EvalFailed(f"the API key was refused ({me.status_code})")

    async def ingest(self, documents: list[EvalDocument]) -> None:
        """Upload (versioned by ``external_id``: unchanged documents are not re-ingested) and
        wait until every ingestion job finished."""
        jobs = []
        for document in documents:
            response = await self.client.post(
                "/v1/documents", json=msgspec.to_builtins(document), headers=self.headers
            )
            if response.status_code != 202:
                raise EvalFailed(f"uploading {document.external_id!r}: {response.text}")
            if job_id := response.json().get("job_id"):
                jobs.append((document.external_id, job_id))
        for external_id, job_id in jobs:
            for _ in range(1200):
                job = (await self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)).json()
                if job.get("status") == "succeeded":
                    break
                if job.get("status") == "failed":
                    raise EvalFailed(f"ingesting {external_id!r} failed: {job.get('error_code')}")
                await asyncio.sleep(0.1)
            else:
                raise EvalFailed(f"ingesting {external_id!r} did not finish")

    async def ask(self, question: str, tier: str) -> tuple[int, dict[str, Any]]:
        """One fresh answer: the tier pinned, the semantic cache bypassed, generative mode."""
        response = await self.client.post(
            "/v1/chat",
            json={"message": question, "model": tier, "cache": False, "mode": "generative"},
            headers=self.headers,
        )
        json_body = "json" in response.headers.get("content-type", "")
        return response.status_code, response.json() if json_body else {}

    async def forget(self, session_id: str) -> None:
        await self.client.delete(f"/v1/chat/sessions/{session_id}", headers=self.headers)
