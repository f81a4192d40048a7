"""Documents through the API: ingestion jobs, ABAC in search, ACL changes, deletion."""

from __future__ import annotations

import base64
import uuid

from litestar import Litestar

from app.runtime import Runtime
from retrieval.repositories import DocumentRepository
from tests.support.deployments import Deployment
from tests.support.documents import add, member, search, wait_for_job
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, context_of

POLICY = """# Travel policy

## Hotels

Employees may book hotels up to 180 euros per night in Paris and 140 euros elsewhere.

## Trains

First class is allowed for journeys longer than four hours.
"""
SECRET = """# Project Nightingale

The acquisition of Falcon Robotics closes on March 3rd for 42 million euros.
"""


async def test_ingest_and_search_with_abac(api: Api) -> None:
    tenant = await api.new_tenant()
    finance = await api.new_group(tenant, "finance")
    _alice, alice_key = await member(api, tenant, clearance=1)
    bob, bob_key = await member(api, tenant, clearance=3)
    await api.client.put(
        f"/v1/admin/groups/{finance['id']}/members/{bob['id']}", headers=tenant.admin
    )

    policy = await add(
        api, tenant, "Travel policy", POLICY, acl={"visibility": "tenant", "classification": 1}
    )
    secret = await add(
        api,
        tenant,
        "Nightingale",
        SECRET,
        acl={"visibility": "restricted", "groups": [finance["id"]], "classification": 3},
    )

    hits = await search(api, alice_key, "hotel price per night in Paris")
    assert hits and hits[0]["document_id"] == policy["document_id"]
    assert hits[0]["heading_path"] == ["Travel policy", "Hotels"]
    assert "180 euros" in hits[0]["text"]
    assert hits[0]["title"] == "Travel policy"
    # Alice is not in finance: Nightingale never comes back, even for its own words.
    leaked = await search(api, alice_key, "acquisition of Falcon Robotics March 3rd")
    assert secret["document_id"] not in {h["document_id"] for h in leaked}
    found = await search(api, bob_key, "acquisition of Falcon Robotics March 3rd")
    assert found[0]["document_id"] == secret["document_id"]

    listed = (await api.client.get("/v1/documents", headers=alice_key)).json()["items"]
    assert [d["id"] for d in listed] == [policy["document_id"]]
    assert_problem(
        await api.client.get(f"/v1/documents/{secret['document_id']}", headers=alice_key),
        404,
        "document_not_found",
    )
    read = (await api.client.get(f"/v1/documents/{secret['document_id']}", headers=bob_key)).json()
    assert (read["title"], read["status"], read["chunk_count"]) == ("Nightingale", "ready", 1)


async def test_acl_change_and_group_removal_apply_to_the_next_search(api: Api) -> None:
    tenant = await api.new_tenant()
    team = await api.new_group(tenant, "team")
    carol, carol_key = await member(api, tenant, clearance=3)
    await api.client.put(
        f"/v1/admin/groups/{team['id']}/members/{carol['id']}", headers=tenant.admin
    )
    doc = await add(
        api,
        tenant,
        "Roadmap",
        "# Roadmap\n\nThe Orion launch moves to October.",
        acl={"groups": [team["id"]], "classification": 0},
    )
    assert await search(api, carol_key, "Orion launch October")

    patched = await api.client.patch(
        f"/v1/documents/{doc['document_id']}/acl",
        json={"groups": [], "users": []},
        headers=tenant.admin,
    )
    assert patched.status_code == 200, patched.text
    assert await search(api, carol_key, "Orion launch October") == []

    await api.client.patch(
        f"/v1/documents/{doc['document_id']}/acl",
        json={"groups": [team["id"]]},
        headers=tenant.admin,
    )
    assert await search(api, carol_key, "Orion launch October")
    await api.client.delete(
        f"/v1/admin/groups/{team['id']}/members/{carol['id']}", headers=tenant.admin
    )
    assert await search(api, carol_key, "Orion launch October") == []


async def test_versions_duplicates_and_deletion(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    first = await add(
        api,
        tenant,
        "Handbook",
        "# Handbook\n\nLunch is at noon.",
        external_id="hb-1",
        acl={"visibility": "tenant"},
    )
    again = await api.client.post(
        "/v1/documents",
        headers=tenant.admin,
        json={
            "title": "Handbook",
            "text": "# Handbook\n\nLunch is at noon.",
            "external_id": "hb-1",
        },
    )
    assert again.json() == {**first, "job_id": None, "duplicate": True}
    second = await add(
        api, tenant, "Handbook", "# Handbook\n\nLunch is at one o'clock.", external_id="hb-1"
    )
    assert (second["document_id"], second["version"]) == (first["document_id"], 2)
    hits = await search(api, tenant.admin, "when is lunch")
    assert [h["text"] for h in hits] == ["Lunch is at one o'clock."]

    deleted = await api.client.delete(f"/v1/documents/{first['document_id']}", headers=tenant.admin)
    assert deleted.status_code == 204
    assert await search(api, tenant.admin, "when is lunch") == []
    assert_problem(
        await api.client.get(f"/v1/documents/{first['document_id']}", headers=tenant.admin), 404
    )
    objects = (
        deployment.settings.data_dir
        / "regions"
        / "eu"
        / "objects"
        / uuid.UUID(tenant.id).hex
        / "document"
    )
    assert not list(objects.glob(f"{uuid.UUID(first['document_id']).hex}-*"))


async def test_bad_documents_fail_visibly(api: Api) -> None:
    tenant = await api.new_tenant()
    files = {
        "file": (
            "scan.png",
            base64.b64decode(
                "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
            ),
            "image/png",
        )
    }
    response = await api.client.post("/v1/documents/upload", files=files, headers=tenant.admin)
    assert response.status_code == 202, response.text
    job = await wait_for_job(api, tenant, response.json()["job_id"])
    assert (job["status"], job["error_code"]) == ("failed", "unsupported_media_type")
    doc = (
        await api.client.get(
            f"/v1/documents/{response.json()['document_id']}", headers=tenant.admin
        )
    ).json()
    assert doc["status"] == "failed"


async def test_upload_markdown_file(api: Api) -> None:
    tenant = await api.new_tenant()
    files = {"file": ("policy.md", POLICY.encode(), "text/markdown")}
    response = await api.client.post(
        "/v1/documents/upload",
        files=files,
        headers=tenant.admin,
        data={"acl": '{"visibility": "tenant"}'},
    )
    assert response.status_code == 202, response.text
    job = await wait_for_job(api, tenant, response.json()["job_id"])
    assert job["status"] == "succeeded"
    hits = await search(api, tenant.admin, "first class trains")
    assert hits[0]["heading_path"] == ["Travel policy", "Trains"]


async def test_upload_form_fields_follow_the_json_rules(api: Api) -> None:
    tenant = await api.new_tenant()
    # Empty text fields (as HTML forms send them) are no value: two such uploads are two
    # documents, not a clash on an empty external id.
    for body in (b"first", b"second"):
        response = await api.client.post(
            "/v1/documents/upload",
            files={"file": ("a.txt", body, "text/plain")},
            data={"external_id": "", "source_uri": ""},
            headers=tenant.admin,
        )
        assert response.status_code == 202, response.text
    assert_problem(
        await api.client.post(
            "/v1/documents/upload",
            files={"file": ("a.txt", b"third", "text/plain")},
            data={"external_id": "has spaces"},
            headers=tenant.admin,
        ),
        422,
    )


async def test_scim_group_removal_applies_to_the_next_search(api: Api) -> None:
    from tests.support.scim import issue_token

    tenant = await api.new_tenant()
    token = bearer(await issue_token(api, tenant))
    base = f"/scim/v2/{tenant.slug}"
    user, key = await member(api, tenant)
    created = await api.client.post(
        f"{base}/Groups",
        headers=token,
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "legal",
            "members": [{"value": user["id"]}],
        },
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    await add(
        api,
        tenant,
        "Contract",
        "# Contract\n\nThe indemnity cap is two million.",
        acl={"groups": [group_id]},
    )
    assert await search(api, key, "indemnity cap")

    removed = await api.client.patch(
        f"{base}/Groups/{group_id}",
        headers=token,
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": f'members[value eq "{user["id"]}"]'}],
        },
    )
    assert removed.status_code in (200, 204), removed.text
    assert await search(api, key, "indemnity cap") == []


async def test_deletion_leaves_nothing_in_any_store(
    api: Api, app: Litestar, runtime: Runtime, deployment: Deployment
) -> None:
    # The embedded vector store has one owning process: count through the app's own index.
    knowledge = app.state.runtime.knowledge
    tenant = await api.new_tenant()
    doc = await add(
        api, tenant, "Memo", "# Memo\n\nThe offsite is in Lisbon.", acl={"visibility": "tenant"}
    )
    doc_id = uuid.UUID(doc["document_id"])
    ctx = context_of(tenant)
    assert await knowledge.count(ctx, doc_id) == 1
    assert (
        await api.client.delete(f"/v1/documents/{doc_id}", headers=tenant.admin)
    ).status_code == 204
    assert await knowledge.count(ctx, doc_id) == 0
    async with runtime.registry.tenant_transaction(ctx) as session:
        assert await DocumentRepository(session, ctx).get(doc_id) is None
    objects = deployment.settings.data_dir / "regions" / "eu" / "objects"
    assert not [p for p in objects.rglob(f"{doc_id.hex}*")]


async def test_identical_content_of_someone_else_is_not_revealed(api: Api) -> None:
    tenant = await api.new_tenant()
    _, alice_key = await member(api, tenant)
    _, bob_key = await member(api, tenant)
    text = "# Salary review\n\nThe 2027 salary budget grows by four percent."
    private = await add(api, tenant, "Mine", text, headers=alice_key)  # no ACL: Alice only
    copy = await add(api, tenant, "Also mine", text, headers=bob_key)
    assert copy["duplicate"] is False
    assert copy["document_id"] != private["document_id"]
    again = await api.client.post(
        "/v1/documents", json={"title": "Mine", "text": text}, headers=alice_key
    )
    assert again.json()["duplicate"] is True
    assert again.json()["document_id"] == private["document_id"]


async def test_transient_failures_are_retried_then_fail_visibly(api: Api, runtime: Runtime) -> None:
    """A job whose stored file is missing keeps failing: retried with backoff, then ``failed``
    with a reason — a poison job never loops forever and never disappears."""
    from kernel.jobs.models import Job
    from kernel.jobs.repositories import JobRepository
    from retrieval.models import Document

    tenant = await api.new_tenant()
    ctx = context_of(tenant)
    document_id, job_id = uuid.uuid4(), uuid.uuid4()
    async with runtime.registry.tenant_transaction(ctx) as session:
        keys = runtime.keyring.for_tenant(session, ctx)
        await DocumentRepository(session, ctx).add(
            Document(
                id=document_id,
                owner_id=uuid.UUID(tenant.admin_id),
                version=1,
                external_id=None,
                sealed_title=await keys.seal("document-title", str(document_id), b"Lost"),
                media_type="text/markdown",
                size_bytes=4,
                content_hash="0" * 64,
                status="processing",
                acl={"visibility": "tenant"},
                meta={},
                chunk_count=0,
            )
        )
        await JobRepository(session, ctx).add(
            Job(
                id=job_id,
                kind="ingest",
                document_id=document_id,
                document_version=1,
                status="queued",
                attempts=0,
            )
        )
    runtime.jobs.base_delay = 0.01
    await runtime.jobs.enqueue(uuid.UUID(tenant.id), job_id)
    await runtime.jobs.drain()
    job = (await api.client.get(f"/v1/jobs/{job_id}", headers=tenant.admin)).json()
    assert (job["status"], job["error_code"]) == ("failed", "retries_exhausted")
    assert job["attempts"] == runtime.jobs.max_attempts
    document = (await api.client.get(f"/v1/documents/{document_id}", headers=tenant.admin)).json()
    assert document["status"] == "failed"
    # Running it again does nothing: a finished job is not run twice.
    await runtime.jobs.enqueue(uuid.UUID(tenant.id), job_id)
    await runtime.jobs.drain()
    again = (await api.client.get(f"/v1/jobs/{job_id}", headers=tenant.admin)).json()
    assert again["attempts"] == runtime.jobs.max_attempts
