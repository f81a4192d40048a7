"""``bulwark audit verify --tenant SLUG`` as an operator runs it (embedded default, SQLite),
on a chain begun before RFC 8785 and continued after it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests import outsider
from tests.support.audit import SQLITE_TRIGGERS, hash_as_before

ACME = "(SELECT tenant_id FROM audit_heads LIMIT 1)"  # the only tenant in region eu


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["BULWARK_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def reseal(database: Path, legacy: int) -> None:
    """Re-seal acme's whole chain in place: its first ``legacy`` events exactly as the code before
    RFC 8785 wrote them (no ``canon``), the others in RFC 8785, relinked from genesis."""
    columns = "id, tenant_id, sequence, occurred_at, actor, action, resource_type, resource_id, "
    columns += "outcome, request_id, detail"
    conn = sqlite3.connect(database)
    try:
        with conn:
            rows = conn.execute(
                f"SELECT {columns} FROM audit_events WHERE tenant_id = {ACME} ORDER BY sequence"
            ).fetchall()
            conn.execute("DROP TRIGGER audit_events_no_update")
            previous = outsider.GENESIS
            for row in rows:
                event: dict[str, Any] = dict(zip(columns.split(", "), row, strict=True))
                event["id"] = str(uuid.UUID(event["id"]))
                event["tenant_id"] = str(uuid.UUID(event["tenant_id"]))
                moment = datetime.fromisoformat(event["occurred_at"])
                event["occurred_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                event["detail"] = json.loads(event["detail"])
                event["prev_hash"] = previous
                if event["sequence"] > legacy:
                    event["canon"] = 2
                    previous = outsider.event_hash(event)
                else:
                    previous = hash_as_before(event)
                conn.execute(
                    f"UPDATE audit_events SET canon = ?, prev_hash = ?, hash = ? "
                    f"WHERE tenant_id = {ACME} AND sequence = ?",
                    (event.get("canon"), event["prev_hash"], previous, event["sequence"]),
                )
            conn.execute(
                f"UPDATE audit_heads SET head_hash = ? WHERE tenant_id = {ACME}", (previous,)
            )
            conn.execute(SQLITE_TRIGGERS["UPDATE"])
    finally:
        conn.close()


def test_audit_verify_exit_codes(tmp_path: Path) -> None:
    assert cli("migrate", data_dir=tmp_path).returncode == 0
    assert cli("demo", data_dir=tmp_path).returncode == 0

    ok = cli("audit", "verify", "--tenant", "acme", data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    # The demo's own actions: the tenant, 4 users, 2 groups, 2 memberships, 4 keys, and its
    # OIDC pointed at the development IdP.
    assert json.loads(ok.stdout) == {
        "tenant": "acme",
        "ok": True,
        "events_checked": 14,
        "first_bad_sequence": None,
    }
    # Re-running the demo changes nothing, so it records nothing.
    assert cli("demo", data_dir=tmp_path).returncode == 0
    again = cli("audit", "verify", "--tenant", "acme", data_dir=tmp_path)
    assert json.loads(again.stdout)["events_checked"] == 14

    unknown = cli("audit", "verify", "--tenant", "nope", data_dir=tmp_path)
    assert unknown.returncode == 2
    assert "no tenant with slug 'nope'" in unknown.stderr

    # A chain whose first 7 events were written before RFC 8785 and the rest after verifies.
    reseal(tmp_path / "regions" / "eu" / "bulwark.db", legacy=7)
    mixed = cli("audit", "verify", "--tenant", "acme", data_dir=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    assert json.loads(mixed.stdout)["events_checked"] == 14

    # Tamper with acme's 6th event (a legacy one) in its region (eu) as the file's owner would.
    conn = sqlite3.connect(tmp_path / "regions" / "eu" / "bulwark.db")
    try:
        with conn:
            conn.execute("DROP TRIGGER audit_events_no_update")
            conn.execute(
                "UPDATE audit_events SET detail = '{}' WHERE sequence = 6 AND tenant_id = "
                "(SELECT tenant_id FROM audit_heads LIMIT 1)"
            )
            conn.execute(SQLITE_TRIGGERS["UPDATE"])
    finally:
        conn.close()
    broken = cli("audit", "verify", "--tenant", "acme", data_dir=tmp_path)
    assert broken.returncode == 1, broken.stderr
    assert json.loads(broken.stdout) == {
        "tenant": "acme",
        "ok": False,
        "events_checked": 14,
        "first_bad_sequence": 6,
    }
    # The other tenant, in the other region, is untouched.
    globex = cli("audit", "verify", "--tenant", "globex", data_dir=tmp_path)
    assert globex.returncode == 0 and json.loads(globex.stdout)["ok"] is True


def test_sar_find_export_and_erase_from_the_command_line(tmp_path: Path) -> None:
    import zipfile

    assert cli("migrate", data_dir=tmp_path).returncode == 0
    assert cli("demo", data_dir=tmp_path).returncode == 0
    credentials = json.loads((tmp_path / "demo-credentials.json").read_text())
    member = credentials["tenants"]["acme"]["users"][-1]
    email = member["email"]

    found = cli("sar", "find", "--tenant", "acme", "--email", email, data_dir=tmp_path)
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)["report"]
    assert report["kind"] == "access" and report["stores"]["user"]["count"] == 1
    assert report["stores"]["api_keys"]["count"] == 1

    out = tmp_path / "bundle.zip"
    exported = cli(
        "sar", "export", "--tenant", "acme", "--email", email, "--out", str(out), data_dir=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(out) as bundle:
        assert email in bundle.read("user.json").decode()
        assert "report.json" in bundle.namelist()

    erased = cli("sar", "erase", "--tenant", "acme", "--email", email, data_dir=tmp_path)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["report"]["stores"]["user"]["action"] == "deleted"
    again = cli("sar", "find", "--tenant", "acme", "--email", email, data_dir=tmp_path)
    assert again.returncode == 1 and "Error: No person with that reference" in again.stderr
    assert "Traceback" not in again.stderr
    verified = cli("audit", "verify", "--tenant", "acme", data_dir=tmp_path)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
