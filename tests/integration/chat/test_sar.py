"""Subject-access requests end to end: a person with sentinel data uploads, chats, hits the cache
and appears in the audit log; an access request reports it all; an erasure removes it from every
store, the audit chain still verifies, the signed report verifies, and an interrupted erasure
completes when resumed."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.runtime import Runtime
from audit.services import AuditLog
from compliance.models import SarRequest
from compliance.repositories import SarRepository
from compliance.services import REPORT_KIND, SarRunner, SarService
from kernel.jobs.models import Job
from tests import outsider
from tests.peers.llm_peer import LlmPeer
from tests.support.audit import deployment_key, deployment_signing_key
from tests.support.deployments import Deployment
from tests.support.documents import add, wait_for_job
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle, context_of

NAME = "Zebulon Quartzfeather"
EMAIL = "zebulon.quartzfeather@sentinel.example"
SENTENCE = "The heliotrope ledger closes on the ninth moon"


async def officer(api: Api, tenant: TenantHandle) -> dict[str, str]:
    user = await api.new_user(tenant, roles=["compliance_officer"])
    return bearer((await api.new_key(tenant, user["id"]))["key"])


async def run_sar(
    api: Api, tenant: TenantHandle, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    started = await api.client.post("/v1/sar", json=body, headers=headers)
    assert started.status_code == 202, started.text
    await wait_for_job(api, tenant, started.json()["job_id"])
    done = (await api.client.get(f"/v1/sar/{started.json()['id']}", headers=headers)).json()
    assert done["status"] == "done", done
    return dict(done)


async def queue_erasure(
    runtime: Runtime, tenant: TenantHandle, subject_id: str
) -> tuple[SarRequest, Job]:
    """An erasure request and its job, stored but not enqueued: the test runs it itself."""
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        service = SarService(
            session,
            ctx,
            runtime.keyring.for_tenant(session, ctx),
            AuditLog(session, ctx),
            pepper=runtime.pepper,
        )
        return await service.submit("erasure", uuid.UUID(subject_id), "0" * 64, "delete")


def sar_runner(runtime: Runtime, interrupt: Any) -> SarRunner:
    return SarRunner(
        runtime.registry,
        runtime.keyring,
        runtime.knowledge,
        runtime.tenant_objects,
        runtime.audit_signer,
        runtime.pepper,
        interrupt=interrupt,
    )


def verify(report: dict[str, Any], signature: str, key: Ed25519PublicKey) -> None:
    """As an auditor would, with the deployment's public key (raises if it does not verify)."""
    assert report["canon"] == 2 and report["signing_key"] == outsider.public_key_b64(key)
    outsider.verify_report(report, signature, key)


def raw_files(deployment: Deployment) -> list[Path]:
    root = Path(deployment.settings.data_dir)
    return [p for p in root.rglob("*") if p.is_file()]


async def subject_with_data(
    chat: Api, peer: LlmPeer
) -> tuple[TenantHandle, dict[str, Any], dict[str, str]]:
    tenant = await chat.new_tenant("eu")
    created = await chat.client.post(
        "/v1/admin/users",
        json={"email": EMAIL, "display_name": NAME, "roles": ["member"]},
        headers=tenant.admin,
    )
    assert created.status_code == 201, created.text
    subject = created.json()
    key = bearer((await chat.new_key(tenant, subject["id"]))["key"])
    await add(
        chat,
        tenant,
        "Ledger notes",
        f"# Ledger\n\n{SENTENCE}. The ledger is kept in Lisbon.",
        acl={"visibility": "tenant"},
        headers=key,
    )
    peer.text = "The ledger is kept in Lisbon [1]."
    question = "Where is the heliotrope ledger kept?"
    for expected in ("miss", "exact"):
        answer = await chat.client.post("/v1/chat", json={"message": question}, headers=key)
        assert answer.status_code == 200 and answer.json()["cache"] == expected, answer.text
    return tenant, subject, key


async def test_access_then_erasure_leaves_nothing_and_the_report_verifies(
    chat: Api,
    peer: LlmPeer,
    deployment: Deployment,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant, subject, key = await subject_with_data(chat, peer)
    compliance = await officer(chat, tenant)

    access = await run_sar(
        chat, tenant, compliance, subject={"email": EMAIL.upper()}, kind="access"
    )
    stores = access["report"]["stores"]
    for name in (
        "user",
        "api_keys",
        "chat_sessions",
        "chat_messages",
        "documents",
        "document_chunks",
        "cache_entries",
        "usage_records",
        "audit_events",
    ):
        assert stores[name]["count"] >= 1, (name, stores)
    assert stores["user"]["ids"] == [subject["id"]]
    deployment_public = deployment_key(deployment)
    verify(access["report"], access["signature"], deployment_public)
    exported = await chat.client.get(f"/v1/sar/{access['id']}/export", headers=compliance)
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(exported.content))
    files = {name: bundle.read(name).decode(errors="replace") for name in bundle.namelist()}
    where = {
        "user": "user.json",
        "memberships": "memberships.json",
        "api_keys": "api_keys.json",
        "sessions": "sessions.json",
        "chat_sessions": "chat.json",
        "chat_messages": "chat.json",
        "documents": "documents.json",
        "cache_entries": "cache_entries.json",
        "usage_records": "usage_records.json",
        "usage_counters": "usage_counters.json",
        "rate_windows": "rate_windows.json",
        "audit_events": "audit_events.json",
    }
    for store, name in where.items():
        for item in stores[store].get("ids", []):
            assert item in files[name], (store, item)
    originals = [n for n in files if n.startswith("documents/")]
    assert len(originals) == stores["document_objects"]["count"]
    assert SENTENCE in "".join(files[n] for n in originals)
    assert EMAIL in files["user.json"] and NAME in files["user.json"]
    assert "Where is the heliotrope ledger kept?" in files["chat.json"]
    assert json.loads(files["report.json"])["signature"] == access["signature"]

    erasure = await run_sar(
        chat, tenant, compliance, subject={"user_id": subject["id"]}, kind="erasure"
    )
    verify(erasure["report"], erasure["signature"], deployment_public)
    assert erasure["steps_done"] == [
        "cache",
        "chat",
        "documents",
        "usage",
        "identity",
        "audit_pseudonym",
    ]
    assert erasure["report"]["stores"]["documents"]["action"] == "deleted"
    # The same person's data, found before erasure, is what the erasure report lists.
    assert {k: v["count"] for k, v in erasure["report"]["stores"].items()} == {
        k: v["count"] for k, v in stores.items()
    } | {"audit_events": erasure["report"]["stores"]["audit_events"]["count"]}

    # Gone everywhere: the API, the raw database/vector/object files, the audit chain's clear text.
    assert_problem(await chat.client.get("/v1/me", headers=key), 401)
    listed = (await chat.client.get("/v1/admin/users", headers=tenant.admin)).json()
    assert subject["id"] not in {u["id"] for u in listed["items"]}
    docs = (await chat.client.get("/v1/documents", headers=tenant.admin)).json()["items"]
    assert docs == []
    verified = (await chat.client.get("/v1/audit/verify", headers=compliance)).json()
    assert verified["ok"] is True
    blobs = {str(path): path.read_bytes() for path in raw_files(deployment)}  # files, shards
    if deployment.backend == "postgres":
        # Dead tuples are not data; a dump is what a backup would hold.
        dump = await asyncio.create_subprocess_exec(
            shutil.which("pg_dump") or "pg_dump",
            "--data-only",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            deployment.databases["eu"],
            stdout=asyncio.subprocess.PIPE,
        )
        dumped, _ = await asyncio.wait_for(dump.communicate(), timeout=120)
        assert dump.returncode == 0
        blobs["pg_dump eu"] = dumped
    logs = caplog.text + "".join(capsys.readouterr())
    blobs["logs"] = logs.encode()
    for where, blob in blobs.items():
        for sentinel in (NAME, EMAIL, SENTENCE):
            assert sentinel.lower().encode() not in blob.lower(), (sentinel, where)
    export = (await chat.client.get("/v1/audit/export", headers=compliance)).text
    assert EMAIL not in export and NAME not in export and subject["id"] in export


async def test_an_interrupted_erasure_completes_when_resumed(
    chat: Api, peer: LlmPeer, runtime: Runtime, deployment: Deployment
) -> None:
    tenant, subject, _ = await subject_with_data(chat, peer)
    compliance = await officer(chat, tenant)
    started = await chat.client.post(
        "/v1/sar",
        json={"subject": {"user_id": subject["id"]}, "kind": "access"},
        headers=compliance,
    )
    await wait_for_job(chat, tenant, started.json()["job_id"])
    expected = (await chat.client.get(f"/v1/sar/{started.json()['id']}", headers=compliance)).json()

    # Queue an erasure, and run it here, crashing after the first two steps.
    ctx = context_of(tenant)
    request, job = await queue_erasure(runtime, tenant, subject["id"])
    steps: list[str] = []

    async def crash_at_documents(step: str) -> None:
        steps.append(step)
        if step == "documents":
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        await sar_runner(runtime, crash_at_documents)(ctx, job)
    halfway = (await chat.client.get(f"/v1/sar/{request.id}", headers=compliance)).json()
    assert halfway["status"] == "running" and halfway["steps_done"] == ["cache", "chat"]

    await sar_runner(runtime, None)(ctx, Job(id=job.id, kind=job.kind))
    done = (await chat.client.get(f"/v1/sar/{request.id}", headers=compliance)).json()
    assert done["status"] == "done"
    assert done["steps_done"] == [
        "cache",
        "chat",
        "documents",
        "usage",
        "identity",
        "audit_pseudonym",
    ]
    verify(done["report"], done["signature"], deployment_key(deployment))
    counts = {k: v["count"] for k, v in done["report"]["stores"].items()}
    assert counts == {k: v["count"] for k, v in expected["report"]["stores"].items()}
    assert steps == ["cache", "chat", "documents"]  # resumed at the step that crashed
    await asyncio.sleep(0)


async def test_only_compliance_officers_run_sars_and_bad_subjects_are_refused(chat: Api) -> None:
    tenant = await chat.new_tenant("eu")
    body = {"subject": {"email": "nobody@nowhere.example"}, "kind": "access"}
    assert_problem(await chat.client.post("/v1/sar", json=body, headers=tenant.admin), 403)
    compliance = await officer(chat, tenant)
    assert_problem(
        await chat.client.post("/v1/sar", json=body, headers=compliance), 404, "subject_not_found"
    )
    two = {"subject": {"email": "a@b.example", "external_id": "x"}, "kind": "erasure"}
    assert_problem(await chat.client.post("/v1/sar", json=two, headers=compliance), 422)
    assert_problem(
        await chat.client.get(f"/v1/sar/{uuid.uuid4()}", headers=compliance), 404, "sar_not_found"
    )


async def test_retention_sweeps_what_is_older_than_the_tenant_keeps(
    chat: Api, peer: LlmPeer, runtime: Runtime
) -> None:
    tenant, subject, key = await subject_with_data(chat, peer)
    await chat.client.get("/v1/usage", headers=tenant.admin)  # pending settlements land first
    policy = {
        "chat_messages_days": 0,
        "cache_entries_days": 0,
        "usage_detail_days": 0,
        "uploaded_originals_days": 0,
    }
    put = await chat.client.put("/v1/admin/retention", json=policy, headers=tenant.admin)
    assert put.status_code == 200, put.text
    current = (await chat.client.get("/v1/admin/retention", headers=tenant.admin)).json()
    assert current == {**policy, "erasure_documents": "delete"}
    assert_problem(await chat.client.put("/v1/admin/retention", json=policy, headers=key), 403)

    swept = (await runtime.sweep_retention())[uuid.UUID(tenant.id)]
    assert (swept.chat_sessions, swept.chat_messages) == (2, 4)
    assert (swept.cache_entries, swept.usage_records, swept.uploaded_originals) == (1, 1, 1)
    again = (await runtime.sweep_retention())[uuid.UUID(tenant.id)]
    assert (again.chat_messages, again.cache_entries, again.uploaded_originals) == (0, 0, 0)

    assert (await chat.client.get("/v1/chat/sessions", headers=key)).json()["total"] == 0
    asked = await chat.client.post(
        "/v1/chat", json={"message": "Where is the heliotrope ledger kept?"}, headers=key
    )
    assert asked.json()["cache"] == "miss"
    events = (
        await chat.client.get("/v1/audit/events?action=retention.swept", headers=tenant.admin)
    ).json()
    assert events["items"][0]["detail"]["chat_messages"] == 4
    assert subject["id"]  # the person is untouched by retention


async def test_erasure_can_keep_documents_for_the_tenant(chat: Api, peer: LlmPeer) -> None:
    tenant, subject, _ = await subject_with_data(chat, peer)
    put = await chat.client.put(
        "/v1/admin/retention", json={"erasure_documents": "reassign"}, headers=tenant.admin
    )
    assert put.status_code == 200, put.text
    done = await run_sar(
        chat,
        tenant,
        await officer(chat, tenant),
        subject={"user_id": subject["id"]},
        kind="erasure",
    )
    assert done["report"]["stores"]["documents"]["action"] == "reassigned"
    docs = (await chat.client.get("/v1/documents", headers=tenant.admin)).json()["items"]
    assert [d["title"] for d in docs] == ["Ledger notes"]
    hits = (
        await chat.client.post(
            "/v1/search", json={"query": "heliotrope ledger"}, headers=tenant.admin
        )
    ).json()["hits"]
    assert hits and SENTENCE in hits[0]["text"]


async def test_a_restart_resumes_an_erasure_left_halfway(
    chat: Api, peer: LlmPeer, runtime: Runtime
) -> None:
    tenant, subject, _ = await subject_with_data(chat, peer)
    ctx = context_of(tenant)
    request, job = await queue_erasure(runtime, tenant, subject["id"])

    async def crash(step: str) -> None:
        if step == "usage":
            raise RuntimeError("the process died")

    with pytest.raises(RuntimeError):
        await sar_runner(runtime, crash)(ctx, Job(id=job.id, kind=job.kind))
    # A new process over the same stores: its start finds the job unfinished and runs it.
    assert await runtime.resume_jobs() >= 1
    await runtime.jobs.drain()
    compliance = await officer(chat, tenant)
    done = (await chat.client.get(f"/v1/sar/{request.id}", headers=compliance)).json()
    assert done["status"] == "done" and done["steps_done"][-1] == "audit_pseudonym"


async def test_a_report_signed_before_rfc8785_still_verifies(
    chat: Api, runtime: Runtime, deployment: Deployment
) -> None:
    tenant = await chat.new_tenant("eu")
    compliance = await officer(chat, tenant)
    person = await chat.new_user(tenant)
    done = await run_sar(chat, tenant, compliance, subject={"user_id": person["id"]}, kind="access")
    key = deployment_key(deployment)
    verify(done["report"], done["signature"], key)

    # The report as the code before RFC 8785 sealed and signed it: no ``canon``, json.dumps.
    old = {k: v for k, v in done["report"].items() if k != "canon"}
    payload = json.dumps(old, sort_keys=True, separators=(",", ":")).encode()
    signature = base64.b64encode(deployment_signing_key(deployment).sign(payload)).decode()
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        request = await SarRepository(session, ctx).get(uuid.UUID(done["id"]))
        assert request is not None
        keys = runtime.keyring.for_tenant(session, ctx)
        request.sealed_report = await keys.seal(REPORT_KIND, str(request.id), payload)
        request.signature = signature

    again = (await chat.client.get(f"/v1/sar/{done['id']}", headers=compliance)).json()
    assert again["report"] == old and again["signature"] == signature
    outsider.verify_report(again["report"], again["signature"], key)
    with pytest.raises(InvalidSignature):
        outsider.verify_report({**old, "kind": "erasure"}, signature, key)
    with pytest.raises(InvalidSignature):  # an old signature does not vouch for a new encoding
        outsider.verify_report({**old, "canon": 2}, signature, key)
