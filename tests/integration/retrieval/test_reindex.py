"""Contextual indexing: a chunk is found by its document's title and heading path (the text
shown stays the chunk's own), and documents indexed before that are rebuilt by a re-index job
that reports its progress."""

from __future__ import annotations

import uuid

from app.runtime import Runtime
from retrieval.index import INDEX_VERSION
from retrieval.repositories import DocumentRepository
from retrieval.services import document_acl
from tests.support.documents import add, member, search, wait_for_job
from tests.support.http import assert_problem
from tests.support.tenants import Api, context_of

LISBON = "The office opens at nine and closes at six. Badges are collected at reception."
BERLIN = "The office opens at eight and closes at five. Badges are collected at reception."


async def test_the_title_finds_a_chunk_that_never_names_it(api: Api) -> None:
    tenant = await api.new_tenant()
    tenant_wide = {"visibility": "tenant"}
    lisbon = await add(api, tenant, "Lisbon office guide", LISBON, acl=tenant_wide)
    await add(api, tenant, "Berlin office guide", BERLIN, acl=tenant_wide)
    hits = await search(api, tenant.admin, "When does the Lisbon office open?")
    assert hits[0]["document_id"] == lisbon["document_id"]
    # The title is indexed, not inserted into what users are shown.
    assert hits[0]["text"] == LISBON
    assert hits[0]["title"] == "Lisbon office guide"
    read = await api.client.get(f"/v1/documents/{lisbon['document_id']}", headers=tenant.admin)
    assert read.json()["index_version"] == INDEX_VERSION


async def test_reindex_rebuilds_older_documents_with_progress(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    ctx = context_of(tenant)
    tenant_wide = {"visibility": "tenant"}
    lisbon = await add(api, tenant, "Lisbon office guide", LISBON, acl=tenant_wide)
    await add(api, tenant, "Berlin office guide", BERLIN, acl=tenant_wide)
    lisbon_id = uuid.UUID(lisbon["document_id"])
    # As an older release left them: vectors from the text alone, marked index version 1.
    async with runtime.registry.tenant_transaction(ctx) as session:
        for document in await DocumentRepository(session, ctx).batch(after=None, size=10):
            await runtime.knowledge.ingest(
                ctx,
                runtime.keyring.for_tenant(session, ctx),
                document_id=document.id,
                version=document.version,
                title="",
                data=(LISBON if document.id == lisbon_id else BERLIN).encode(),
                media_type="text/markdown",
                acl=document_acl(document, with_pii_tags=False),
                metadata={},
                reindex=True,
            )
            document.index_version = 1

    _, member_key = await member(api, tenant)
    assert_problem(
        await api.client.post("/v1/documents/reindex", headers=member_key),
        403,
        "not_tenant_admin",
    )
    started = await api.client.post("/v1/documents/reindex", headers=tenant.admin)
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["kind"], job["done"], job["total"]) == ("reindex", 0, 2)
    finished = await wait_for_job(api, tenant, job["id"])
    assert (finished["status"], finished["done"], finished["total"]) == ("succeeded", 2, 2)

    listed = (await api.client.get("/v1/documents", headers=tenant.admin)).json()["items"]
    assert {d["index_version"] for d in listed} == {INDEX_VERSION}
    assert {d["chunk_count"] for d in listed} == {1}
    # Rebuilt in place: one chunk each, none lost or doubled, and the title now counts.
    assert await runtime.knowledge.count(ctx, lisbon_id) == 1
    hits = await search(api, tenant.admin, "When does the Lisbon office open?")
    assert hits[0]["document_id"] == lisbon["document_id"]
    assert len(hits) == 2

    # Nothing stale left: a new job has nothing to do and says so.
    again = (await api.client.post("/v1/documents/reindex", headers=tenant.admin)).json()
    assert (again["done"], again["total"]) == (0, 0)
    assert (await wait_for_job(api, tenant, again["id"]))["status"] == "succeeded"
