"""The audit log through the HTTP API, on SQLite and PostgreSQL: what is recorded, by whom (as a
pseudonym), what a failed request leaves (nothing), filters and pagination, export, tamper
detection, append-only enforcement in the database, signed checkpoints, and chains written before
RFC 8785. Hashes and signatures are checked as an outsider would (``tests/outsider.py``)."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import itertools
import json
import re
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.exceptions import InvalidSignature
from sqlalchemy.engine import make_url

from tests import outsider
from tests.support.audit import SQLITE_TRIGGERS, deployment_key, hash_as_before
from tests.support.deployments import APP_ROLE, Deployment, raw_pg_dsn
from tests.support.http import assert_problem, bearer
from tests.support.tenants import Api, TenantHandle

GENESIS = "0" * 64


async def all_events(api: Api, tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor is not None else {})}
        page = await api.client.get("/v1/audit/events", params=query, headers=tenant.admin)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def verify(api: Api, tenant: TenantHandle) -> dict[str, Any]:
    response = await api.client.get("/v1/audit/verify", headers=tenant.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def export_lines(api: Api, tenant: TenantHandle) -> list[dict[str, Any]]:
    response = await api.client.get("/v1/audit/export?format=jsonl", headers=tenant.admin)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


# --- direct database access, as the schema owner or as the app role ---------------------------


def _sqlite_path(deployment: Deployment, region: str) -> str:
    database = make_url(deployment.settings.regions[region].database_url).database
    assert database
    return database


def _sqlite_tenant(tenant_id: str) -> str:
    return uuid.UUID(tenant_id).hex  # SQLAlchemy's Uuid type on SQLite: 32 hex characters


async def owner_tamper(
    deployment: Deployment, tenant: TenantHandle, operation: str, statement: str, sequence: int
) -> None:
    """Run ``statement`` (UPDATE/DELETE ... WHERE tenant_id = $1 AND sequence = $2) as the owner,
    with the append-only trigger out of the way for just that statement."""
    await as_owner(deployment, tenant, operation, [(statement, sequence)])


async def as_owner(
    deployment: Deployment,
    tenant: TenantHandle,
    operation: str,
    statements: list[tuple[Any, ...]],
) -> None:
    """Run each statement (``$1`` the tenant id, then its own arguments), each changing exactly
    one row, as the schema owner in one transaction, with the append-only trigger out of the
    way meanwhile. JSON arguments are given as text (cast with ``$n::json`` on PostgreSQL)."""
    if deployment.backend == "postgres":
        conn = await asyncpg.connect(raw_pg_dsn(deployment.databases[tenant.region]))
        try:
            async with conn.transaction():
                await conn.execute(
                    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
                )
                for statement, *args in statements:
                    status = await conn.execute(statement, uuid.UUID(tenant.id), *args)
                    assert status.endswith(" 1"), (statement, status)
                await conn.execute(
                    "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"
                )
        finally:
            await conn.close()
        return

    def run() -> None:
        trigger = "audit_events_no_update" if operation == "UPDATE" else "audit_events_no_delete"
        conn = sqlite3.connect(_sqlite_path(deployment, tenant.region), timeout=15)
        try:
            with conn:
                conn.execute(f"DROP TRIGGER {trigger}")
                for statement, *args in statements:
                    sqlite_statement = re.sub(r"\$(\d+)(::json)?", r"?\1", statement)
                    cursor = conn.execute(sqlite_statement, (_sqlite_tenant(tenant.id), *args))
                    assert cursor.rowcount == 1, statement
                conn.execute(SQLITE_TRIGGERS[operation])
        finally:
            conn.close()

    await asyncio.to_thread(run)


# --- what is recorded --------------------------------------------------------------------------


async def test_admin_actions_are_recorded_with_pseudonymous_actors(api: Api) -> None:
    tenant = await api.new_tenant()
    email = f"person-{uuid.uuid4().hex[:6]}@{tenant.slug}.example"
    user = await api.new_user(tenant, email=email)
    group = await api.new_group(tenant, "Secret Project Name")
    member = f"/v1/admin/groups/{group['id']}/members/{user['id']}"
    assert (await api.client.put(member, headers=tenant.admin)).status_code == 204
    assert (await api.client.put(member, headers=tenant.admin)).status_code == 204  # no-op
    assert (await api.client.delete(member, headers=tenant.admin)).status_code == 204
    key = await api.new_key(tenant, user["id"])
    revoke = await api.client.delete(f"/v1/admin/api-keys/{key['id']}", headers=tenant.admin)
    assert revoke.status_code == 204
    renamed = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"name": "Renamed Corp"}, headers=api.operator
    )
    assert renamed.status_code == 200

    events = await all_events(api, tenant)
    summary = [(e["action"], e["resource_type"], e["resource_id"], e["detail"]) for e in events]
    assert summary == [
        ("tenant.created", "tenant", tenant.id, {"region": "eu"}),
        ("user.created", "user", tenant.admin_id, {"roles": ["tenant_admin"]}),
        ("api_key.issued", "api_key", summary[2][2], {"user_id": tenant.admin_id}),
        (
            "tenant.admin_bootstrapped",
            "user",
            tenant.admin_id,
            {"api_key_id": summary[2][2]},
        ),
        ("user.created", "user", user["id"], {"roles": ["member"]}),
        ("group.created", "group", group["id"], {}),
        ("group.member_added", "group", group["id"], {"user_id": user["id"]}),
        ("group.member_removed", "group", group["id"], {"user_id": user["id"]}),
        ("api_key.issued", "api_key", key["id"], {"user_id": user["id"]}),
        ("api_key.revoked", "api_key", key["id"], {}),
        ("tenant.updated", "tenant", tenant.id, {"changed": ["name"], "status": "active"}),
    ]
    assert [e["sequence"] for e in events] == list(range(1, 12))
    assert {e["outcome"] for e in events} == {"success"}

    # The chain: genesis, links, and hashes anyone can recompute from the published encoding.
    assert events[0]["prev_hash"] == GENESIS
    for previous, event in itertools.pairwise(events):
        assert event["prev_hash"] == previous["hash"]
    assert all(outsider.event_hash(e) == e["hash"] for e in events)
    assert all(e["canon"] == 2 for e in events)

    # Actors are pseudonyms: the operator's four, the admin's six, one per subject.
    operator_actor = events[0]["actor"]
    admin_actor = events[4]["actor"]
    assert operator_actor != admin_actor
    assert all(e["actor"].startswith("ps_") and len(e["actor"]) == 35 for e in events)
    assert [e["actor"] for e in events] == [operator_actor] * 4 + [admin_actor] * 6 + [
        operator_actor
    ]
    assert tenant.admin_id not in {e["actor"] for e in events}

    # Request ids tie each event to its request.
    request_id = f"req-{uuid.uuid4().hex}"
    await api.client.post(
        "/v1/admin/groups",
        json={"name": "traced"},
        headers={**tenant.admin, "X-Request-ID": request_id},
    )
    assert (await all_events(api, tenant, action="group.created"))[-1]["request_id"] == request_id

    # No email, name or other plaintext anywhere: not in the API, not in either export.
    texts = [
        (await api.client.get("/v1/audit/events", headers=tenant.admin)).text,
        (await api.client.get("/v1/audit/export?format=jsonl", headers=tenant.admin)).text,
        (await api.client.get("/v1/audit/export?format=csv", headers=tenant.admin)).text,
    ]
    for text in texts:
        assert "@" not in text
        for plaintext in (email, "Secret Project Name", "Renamed Corp", tenant.slug, key["key"]):
            assert plaintext not in text


async def test_a_failed_request_appends_nothing(api: Api) -> None:
    tenant = await api.new_tenant()
    user = await api.new_user(tenant, email="taken@example.com")
    group = await api.new_group(tenant, "sales")
    before = await export_lines(api, tenant)

    failures = [
        await api.client.post(
            "/v1/admin/users",
            json={"email": "TAKEN@example.com", "display_name": "Dup"},
            headers=tenant.admin,
        ),
        await api.client.post("/v1/admin/groups", json={"name": "sales"}, headers=tenant.admin),
        await api.client.delete(
            f"/v1/admin/groups/{group['id']}/members/{user['id']}", headers=tenant.admin
        ),
        await api.client.delete(f"/v1/admin/api-keys/{uuid.uuid4()}", headers=tenant.admin),
        await api.client.post(
            "/v1/admin/api-keys",
            json={"user_id": str(uuid.uuid4()), "name": "k"},
            headers=tenant.admin,
        ),
    ]
    assert [r.status_code for r in failures] == [409, 409, 404, 404, 404]
    assert await export_lines(api, tenant) == before
    checkpoint = (await api.client.get("/v1/audit/checkpoint", headers=tenant.admin)).json()
    assert (checkpoint["sequence"], checkpoint["head_hash"]) == (
        before[-1]["sequence"],
        before[-1]["hash"],
    )
    assert (await verify(api, tenant))["ok"] is True


async def test_concurrent_appends_get_contiguous_sequences(api: Api) -> None:
    tenant = await api.new_tenant()
    responses = await asyncio.gather(
        *(
            api.client.post("/v1/admin/groups", json={"name": f"g{i}"}, headers=tenant.admin)
            for i in range(8)
        )
    )
    assert [r.status_code for r in responses] == [201] * 8
    events = await all_events(api, tenant)
    assert [e["sequence"] for e in events] == list(range(1, 13))
    assert await verify(api, tenant) == {
        "ok": True,
        "events_checked": 12,
        "first_bad_sequence": None,
    }


# --- reading: filters, pagination, roles ----------------------------------------------------------


async def test_filters_and_cursor_pagination(api: Api) -> None:
    tenant = await api.new_tenant()
    users = [await api.new_user(tenant) for _ in range(5)]
    group = await api.new_group(tenant)
    await api.client.put(
        f"/v1/admin/groups/{group['id']}/members/{users[0]['id']}", headers=tenant.admin
    )

    # Pages of 2 over one action: every user.created event once, in sequence order.
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"action": "user.created", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (
            await api.client.get("/v1/audit/events", params=params, headers=tenant.admin)
        ).json()
        pages += 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["items"][-1]["sequence"]
    assert pages == 4  # 6 events: 2 + 2 + 2 + an empty last page
    assert [e["resource_id"] for e in seen] == [tenant.admin_id] + [u["id"] for u in users]
    sequences = [e["sequence"] for e in seen]
    assert sequences == sorted(sequences) and len(set(sequences)) == 6

    # Cursor is exclusive.
    after = await all_events(api, tenant, cursor=seen[2]["sequence"], action="user.created")
    assert [e["id"] for e in after] == [e["id"] for e in seen[3:]]

    # Resource filters.
    by_group = await all_events(api, tenant, resource_type="group", resource_id=group["id"])
    assert [e["action"] for e in by_group] == ["group.created", "group.member_added"]
    assert await all_events(api, tenant, resource_type="api_key", resource_id=group["id"]) == []

    # Actor: a user id resolves to that user's pseudonym server side; a raw pseudonym works too.
    by_admin = await all_events(api, tenant, actor=f"user:{tenant.admin_id}")
    assert len(by_admin) == 7 and len({e["actor"] for e in by_admin}) == 1
    by_pseudonym = await all_events(api, tenant, actor=by_admin[0]["actor"])
    assert by_pseudonym == by_admin
    by_upper_uuid = await all_events(api, tenant, actor=f"user:{tenant.admin_id.upper()}")
    assert by_upper_uuid == by_admin
    by_operator = await all_events(api, tenant, actor="operator")
    assert [e["action"] for e in by_operator] == [
        "tenant.created",
        "user.created",
        "api_key.issued",
        "tenant.admin_bootstrapped",
    ]
    # A user who never acted has no pseudonym yet: no events.
    assert await all_events(api, tenant, actor=f"user:{users[1]['id']}") == []

    # Time window: since is inclusive, until exclusive; a time without offset is UTC.
    everything = await all_events(api, tenant)
    pivot = everything[5]["occurred_at"]
    since = await all_events(api, tenant, since=pivot)
    until = await all_events(api, tenant, until=pivot)
    assert all(when(e["occurred_at"]) >= when(pivot) for e in since)
    assert all(when(e["occurred_at"]) < when(pivot) for e in until)
    assert len(since) + len(until) == len(everything)
    naive = (when(pivot) - timedelta(days=1)).replace(tzinfo=None)
    assert len(await all_events(api, tenant, since=naive.isoformat())) == len(everything)
    future = await all_events(api, tenant, since="2999-01-01T00:00:00+00:00")
    assert future == []
    assert len(await all_events(api, tenant, until="2999-01-01t00:00:00.123456789z")) == len(
        everything
    )
    for bad in ("2026-13-01T00:00:00Z", "2026-11-29T10:00:60Z"):
        assert_problem(
            await api.client.get(f"/v1/audit/events?since={bad}", headers=tenant.admin),
            422,
            "invalid_time_filter",
        )

    # Bad input is a 400 problem, never a 500.
    for query in (
        "limit=0",
        "limit=501",
        "cursor=-1",
        "cursor=notanumber",
        "actor=alice@example.com",
        "actor=user:not-a-uuid",
        "action=Not%20A%20Code",
        "since=yesterday",
        "until=0.5",
        "since=1700000000",
        "cursor=99999999999999999999999",
    ):
        assert_problem(await api.client.get(f"/v1/audit/events?{query}", headers=tenant.admin), 400)


async def test_only_admins_and_compliance_officers_read_the_log(api: Api) -> None:
    tenant = await api.new_tenant()
    member = await api.new_user(tenant, roles=["member"])
    officer = await api.new_user(tenant, roles=["compliance_officer"])
    member_key = bearer((await api.new_key(tenant, member["id"]))["key"])
    officer_key = bearer((await api.new_key(tenant, officer["id"]))["key"])
    for path in (
        "/v1/audit/events",
        "/v1/audit/export",
        "/v1/audit/verify",
        "/v1/audit/checkpoint",
    ):
        assert_problem(await api.client.get(path, headers=member_key), 403, "role_required")
        assert_problem(await api.client.get(path, headers=api.operator), 403)
        assert_problem(await api.client.get(path), 401)
        assert (await api.client.get(path, headers=officer_key)).status_code == 200


# --- export ---------------------------------------------------------------------------------------


async def test_export_jsonl_and_csv_carry_the_chain(api: Api) -> None:
    tenant = await api.new_tenant()
    for _ in range(3):
        await api.new_group(tenant)
    events = await all_events(api, tenant)

    jsonl = await api.client.get("/v1/audit/export?format=jsonl", headers=tenant.admin)
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert f"audit-{tenant.slug}.jsonl" in jsonl.headers["content-disposition"]
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["hash"] for line in lines] == [e["hash"] for e in events]
    assert lines[0]["prev_hash"] == GENESIS
    assert outsider.chain_is_intact(lines)
    assert lines == await export_lines(api, tenant)  # the default format is jsonl too

    csv_response = await api.client.get("/v1/audit/export?format=csv", headers=tenant.admin)
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert [row["hash"] for row in rows] == [line["hash"] for line in lines]
    assert [row["prev_hash"] for row in rows] == [line["prev_hash"] for line in lines]
    # The hash can be recomputed from the CSV alone.
    assert [outsider.from_csv_row(row) for row in rows] == lines
    assert outsider.chain_is_intact(outsider.from_csv_row(row) for row in rows)

    assert_problem(await api.client.get("/v1/audit/export?format=xml", headers=tenant.admin), 400)


# --- verification and tampering -------------------------------------------------------------------


async def test_tampering_with_one_event_is_detected(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    for _ in range(3):
        await api.new_user(tenant)
    events = await all_events(api, tenant)
    assert await verify(api, tenant) == {
        "ok": True,
        "events_checked": len(events),
        "first_bad_sequence": None,
    }
    target = events[5]
    assert target["action"] == "user.created"
    # One byte of the action changes ("user.created" -> "user.createX").
    await owner_tamper(
        deployment,
        tenant,
        "UPDATE",
        "UPDATE audit_events SET action = substr(action, 1, length(action) - 1) || 'X' "
        "WHERE tenant_id = $1 AND sequence = $2",
        target["sequence"],
    )
    assert (await all_events(api, tenant))[5]["action"] == "user.createX"
    assert await verify(api, tenant) == {
        "ok": False,
        "events_checked": len(events),
        "first_bad_sequence": target["sequence"],
    }


async def test_tampering_with_detail_is_detected(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    await api.new_user(tenant, roles=["member"])
    events = await all_events(api, tenant)
    target = events[1]  # the admin's creation: {"roles": ["tenant_admin"]}
    await owner_tamper(
        deployment,
        tenant,
        "UPDATE",
        'UPDATE audit_events SET detail = \'{"roles":["tenant_adminX"]}\' '
        "WHERE tenant_id = $1 AND sequence = $2",
        target["sequence"],
    )
    result = await verify(api, tenant)
    assert (result["ok"], result["first_bad_sequence"]) == (False, target["sequence"])


async def test_deleting_the_last_event_is_detected(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    await api.new_group(tenant)
    events = await all_events(api, tenant)
    last = events[-1]["sequence"]
    await owner_tamper(
        deployment,
        tenant,
        "DELETE",
        "DELETE FROM audit_events WHERE tenant_id = $1 AND sequence = $2",
        last,
    )
    assert len(await all_events(api, tenant)) == len(events) - 1
    assert await verify(api, tenant) == {
        "ok": False,
        "events_checked": len(events) - 1,
        "first_bad_sequence": last,
    }
    # And no checkpoint vouches for the truncated chain.
    assert_problem(
        await api.client.get("/v1/audit/checkpoint", headers=tenant.admin),
        409,
        "audit_chain_broken",
    )


async def test_app_role_cannot_update_or_delete_events(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    before = await export_lines(api, tenant)
    if deployment.backend == "postgres":
        dsn = raw_pg_dsn(deployment.databases[tenant.region], APP_ROLE)
        conn = await asyncpg.connect(dsn)
        try:
            for statement in (
                "UPDATE audit_events SET action = 'forged' WHERE tenant_id = $1",
                "DELETE FROM audit_events WHERE tenant_id = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT set_config('bulwark.tenant_id', $1, true)", tenant.id
                        )
                        await conn.execute(statement, uuid.UUID(tenant.id))
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("TRUNCATE audit_events")
        finally:
            await conn.close()
        # The trigger binds even the owner (privileges aside), for every statement.
        owner = await asyncpg.connect(raw_pg_dsn(deployment.databases[tenant.region]))
        try:
            for statement in (
                "UPDATE audit_events SET action = 'forged' WHERE tenant_id = $1",
                "DELETE FROM audit_events WHERE tenant_id = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await owner.execute(statement, uuid.UUID(tenant.id))
        finally:
            await owner.close()
    else:

        def attempt() -> None:
            conn = sqlite3.connect(_sqlite_path(deployment, tenant.region), timeout=15)
            try:
                for statement in (
                    "UPDATE audit_events SET action = 'forged' WHERE tenant_id = ?",
                    "DELETE FROM audit_events WHERE tenant_id = ?",
                ):
                    with pytest.raises(sqlite3.DatabaseError, match="append-only"), conn:
                        conn.execute(statement, (_sqlite_tenant(tenant.id),))
            finally:
                conn.close()

        await asyncio.to_thread(attempt)
    assert await export_lines(api, tenant) == before
    assert (await verify(api, tenant))["ok"] is True


# --- checkpoints ----------------------------------------------------------------------------------


async def test_checkpoint_is_signed_over_the_head(api: Api, deployment: Deployment) -> None:
    tenant = await api.new_tenant()
    await api.new_group(tenant)
    events = await all_events(api, tenant)
    response = await api.client.get("/v1/audit/checkpoint", headers=tenant.admin)
    assert response.status_code == 200, response.text
    checkpoint = response.json()
    assert checkpoint["tenant_id"] == tenant.id
    assert checkpoint["sequence"] == events[-1]["sequence"]
    assert checkpoint["head_hash"] == events[-1]["hash"]
    assert checkpoint["algorithm"] == "Ed25519"

    raw_public = base64.b64decode(checkpoint["public_key"])
    assert len(raw_public) == 32
    assert checkpoint["key_id"] == hashlib.sha256(raw_public).hexdigest()[:16]
    assert checkpoint["canon"] == 2
    # An auditor checks it with the deployment's public key and any RFC 8785 implementation.
    key = deployment_key(deployment)
    assert key.public_bytes_raw() == raw_public
    outsider.verify_checkpoint(checkpoint, key)  # raises if invalid
    for forged in ({"sequence": checkpoint["sequence"] + 1}, {"head_hash": GENESIS}):
        with pytest.raises(InvalidSignature):
            outsider.verify_checkpoint({**checkpoint, **forged}, key)

    # One deployment key, kept in the data dir (0600) outside production.
    key_file = Path(deployment.settings.data_dir) / "audit-signing.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    again = (await api.client.get("/v1/audit/checkpoint", headers=tenant.admin)).json()
    assert again["key_id"] == checkpoint["key_id"]
    assert again["public_key"] == checkpoint["public_key"]


# --- chains written before RFC 8785 ---------------------------------------------------------------


async def rewrite_as_before(
    deployment: Deployment, tenant: TenantHandle, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Store ``events`` (the tenant's whole chain) as the code before RFC 8785 wrote them: no
    ``canon``, legacy hashes relinked from genesis, the head moved to the last. The second event
    gets an integer beyond 2**53 in its detail, which that code accepted and RFC 8785 refuses."""
    legacy: list[dict[str, Any]] = []
    previous = GENESIS
    for event in events:
        old = {k: v for k, v in event.items() if k != "canon"}
        if event["sequence"] == 2:
            old["detail"] = {"bytes": 2**53 + 1}
        old["prev_hash"] = previous
        old["hash"] = previous = hash_as_before(old)
        legacy.append(old)
    await as_owner(
        deployment,
        tenant,
        "UPDATE",
        [
            *(
                (
                    "UPDATE audit_events SET canon = NULL, detail = $2::json, prev_hash = $3, "
                    "hash = $4 WHERE tenant_id = $1 AND sequence = $5",
                    json.dumps(old["detail"]),
                    old["prev_hash"],
                    old["hash"],
                    old["sequence"],
                )
                for old in legacy
            ),
            ("UPDATE audit_heads SET head_hash = $2 WHERE tenant_id = $1", previous),
        ],
    )
    return legacy


async def test_a_chain_written_before_rfc8785_verifies_and_continues(
    api: Api, deployment: Deployment
) -> None:
    tenant = await api.new_tenant()
    await api.new_group(tenant)
    legacy = await rewrite_as_before(deployment, tenant, await all_events(api, tenant))
    assert await all_events(api, tenant) == legacy  # no ``canon`` member: legacy events
    assert await verify(api, tenant) == {
        "ok": True,
        "events_checked": len(legacy),
        "first_bad_sequence": None,
    }
    key = deployment_key(deployment)
    over_legacy = (await api.client.get("/v1/audit/checkpoint", headers=tenant.admin)).json()
    assert over_legacy["head_hash"] == legacy[-1]["hash"]
    outsider.verify_checkpoint(over_legacy, key)

    # New events continue the same chain in RFC 8785.
    await api.new_group(tenant)
    await api.new_user(tenant)
    events = await all_events(api, tenant)
    assert events[: len(legacy)] == legacy
    added = events[len(legacy) :]
    assert len(added) == 2 and all(e["canon"] == 2 for e in added)
    assert added[0]["prev_hash"] == legacy[-1]["hash"]
    assert (await verify(api, tenant))["ok"] is True
    lines = await export_lines(api, tenant)
    assert lines == events and outsider.chain_is_intact(lines)
    csv_text = (await api.client.get("/v1/audit/export?format=csv", headers=tenant.admin)).text
    rows = [outsider.from_csv_row(row) for row in csv.DictReader(io.StringIO(csv_text))]
    assert rows == events and outsider.chain_is_intact(rows)
    outsider.verify_checkpoint(
        (await api.client.get("/v1/audit/checkpoint", headers=tenant.admin)).json(), key
    )

    # The recorded version is covered by the hash: switching it is tampering, found where done.
    for sequence, switched, restored in (
        (2, "canon = 2", "canon = NULL"),
        (added[0]["sequence"], "canon = NULL", "canon = 2"),
        (added[1]["sequence"], "canon = 3", "canon = 2"),
    ):
        statement = "UPDATE audit_events SET {} WHERE tenant_id = $1 AND sequence = $2"
        await owner_tamper(deployment, tenant, "UPDATE", statement.format(switched), sequence)
        assert await verify(api, tenant) == {
            "ok": False,
            "events_checked": len(events),
            "first_bad_sequence": sequence,
        }
        assert not outsider.chain_is_intact(await export_lines(api, tenant))
        await owner_tamper(deployment, tenant, "UPDATE", statement.format(restored), sequence)
    assert (await verify(api, tenant))["ok"] is True

    # A changed legacy event is found like any other.
    await owner_tamper(
        deployment,
        tenant,
        "UPDATE",
        "UPDATE audit_events SET action = 'group.deleted' WHERE tenant_id = $1 AND sequence = $2",
        legacy[-1]["sequence"],
    )
    result = await verify(api, tenant)
    assert (result["ok"], result["first_bad_sequence"]) == (False, legacy[-1]["sequence"])
