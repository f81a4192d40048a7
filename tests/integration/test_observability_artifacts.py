"""infra/observability: the alert rules and the Grafana dashboard are valid, and every metric
they query is one the app serves at /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).parents[2] / "infra" / "observability"
RULES = ROOT / "alerts.yml"
DASHBOARD = ROOT / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:bulwark|litestar)_[a-z_]+)")
SELECTOR = re.compile(r"\b((?:bulwark|litestar)_[a-z_]+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return found


def test_alert_rules_are_valid() -> None:
    promtool = Path(sys.executable).parent / "promtool"
    binary = str(promtool) if promtool.exists() else shutil.which("promtool")
    if binary:
        checked = subprocess.run(
            [binary, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "SUCCESS: 5 rules found" in checked.stdout
    # The schema check runs either way (and is all there is without promtool).
    rules = yaml.safe_load(RULES.read_text())
    names = set()
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"])
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            names.add(rule["alert"])
    assert {
        "BulwarkCostPerRequestHigh",
        "BulwarkFallbackRateSpike",
        "BulwarkGuardrailTripSpike",
        "BulwarkGroundednessDrop",
        "BulwarkErrorRate",
    } <= names


def test_the_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries" and panel["targets"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


async def test_every_queried_metric_is_served(client: AsyncTestClient[Litestar]) -> None:
    await client.get("/v1/me")
    served = (await client.get("/metrics")).text
    # Families appear once a sample exists; the ones not touched yet are declared (# TYPE).
    declared = set(re.findall(r"^# TYPE (\S+) ", served, re.M))
    for expr in expressions():
        for name in METRIC.findall(expr):
            base = re.sub(r"_(bucket|sum|count|total)$", "", name)
            assert name in declared or base in declared, (name, expr)
    # The labels a query selects on are labels the family's samples carry.
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(served):
        for sample in family.samples:
            labels.setdefault(family.name, set()).update(sample.labels)
    assert {"method", "path", "status_code"} <= labels["litestar_requests"]
    for expr in expressions():
        for name, matchers in SELECTOR.findall(expr):
            base = re.sub(r"_(bucket|sum|count|total)$", "", name)
            if base in labels:
                assert set(MATCHER.findall(matchers)) <= labels[base], (name, expr)
