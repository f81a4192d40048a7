"""``bulwark eval`` as an operator runs it: the shipped example set, over HTTP, against a real
server whose tiers are served by a scripted model peer that answers better on bigger tiers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from app.eval.sets import EXAMPLE
from bench._server import embedded_server
from tests.peers.llm_peer import LlmPeer, RunningPeer

PRICES = {"small": (0.1, 0.4), "mid": (0.5, 1.5), "frontier": (3.0, 15.0)}


def fleet(peer: LlmPeer) -> Any:
    def models(region: str) -> list[dict[str, Any]]:
        return [
            {
                "name": f"{region}-{tier}",
                "tier": tier,
                "base_url": peer.base_url,
                "model": f"{tier}-model",
                "input_price_per_mtok": PRICES[tier][0],
                "output_price_per_mtok": PRICES[tier][1],
                "context_window": 32000,
            }
            for tier in PRICES
        ]

    return models


def run_eval(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "eval", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_example_set_yields_a_report_and_a_frontier_chart_per_tier(tmp_path: Path) -> None:
    peer = LlmPeer(
        by_model={
            "small-model": "I am not sure.",
            "mid-model": "Hotels in Paris cost up to 180 euros [1].",
            "frontier-model": "Hotels in Paris may cost up to 180 euros per night [1].",
        }
    )
    with (
        RunningPeer(peer),
        embedded_server(
            {"BULWARK_GATEWAY__ROUTER__CLASSIFIER": "none"}, models=fleet(peer)
        ) as server,
    ):
        [admin] = [
            u for u in server["credentials"]["tenants"]["acme"]["users"] if "admin@" in u["email"]
        ]
        out = tmp_path / "eval"
        done = run_eval(
            "--set", "example", "--url", server["base_url"],
            "--api-key", admin["api_key"], "--out", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        again = run_eval(
            "--set", "example", "--url", server["base_url"],
            "--api-key", admin["api_key"], "--out", str(tmp_path / "again"), "--tiers", "small",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        refused = run_eval(
            "--set", "example", "--url", server["base_url"], "--api-key", "bwk_wrong",
            "--out", str(tmp_path / "refused"),
        )  # fmt: skip
        assert refused.returncode != 0 and "refused" in refused.stderr

    summary = json.loads(done.stdout)
    tiers = {t["tier"]: t for t in summary["tiers"]}
    assert list(tiers) == ["small", "mid", "frontier"]
    assert all(t["errors"] == 0 for t in tiers.values())
    # Better answers on the bigger tiers, at a higher price per question.
    assert tiers["small"]["quality"] < tiers["mid"]["quality"] < tiers["frontier"]["quality"]
    costs = [tiers[t]["cost_usd_per_case"] for t in ("small", "mid", "frontier")]
    assert 0 < costs[0] < costs[1] < costs[2]
    assert all(t["on_frontier"] for t in tiers.values())

    report = json.loads((out / "report.json").read_text())
    assert len(report["cases"]) == 3 * 6
    # Each question reached the model once per tier, pinned (no cache answers), and its answer
    # cited the retrieved source where the model cited it.
    assert {c["served_by"] for c in report["cases"]} == {"small", "mid", "frontier"}
    assert all(c["cost_usd"] > 0 for c in report["cases"])
    frontier = [c for c in report["cases"] if c["tier"] == "frontier"]
    hotel = next(c for c in frontier if c["case_id"] == "hotel-paris")
    assert hotel["quality"] > 0.7 and hotel["citations"] == 1
    markdown = (out / "report.md").read_text()
    assert "| frontier | 6 | 0 |" in markdown
    chart = (out / "frontier.png").read_bytes()
    assert chart.startswith(b"\x89PNG\r\n\x1a\n") and len(chart) > 5_000
    # The rerun ingested nothing new and still answered fresh (not from the cache).
    rerun = json.loads((tmp_path / "again" / "report.json").read_text())
    assert all(c["cost_usd"] > 0 for c in rerun["cases"])
    # Every question reached each tier's model (twice for small: the rerun), never the cache;
    # revisions of weakly grounded answers come on top of these.
    questions = {c["question"] for c in json.loads(EXAMPLE.read_text())["cases"]}
    asked = Counter(
        (r["model"], r["messages"][-1]["content"])
        for r in peer.requests
        if r["messages"] and r["messages"][-1]["content"] in questions
    )
    expected = {"small-model": 2, "mid-model": 1, "frontier-model": 1}
    assert asked == {(m, q): n for m, n in expected.items() for q in questions}
