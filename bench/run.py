"""``make bench``: run every benchmark script, keep its JSON, and summarise against the targets.

Every ``bench/*.py`` that is a script (it has a ``__main__`` block; ``_``-prefixed helpers, data
modules and this runner excepted) runs once, one after another, as ``python -m bench.<name>``
with the arguments in ``ARGUMENTS``. Each script's JSON document is written to
``bench/results/<name>.json``; ``bench/results/run.json`` records how long each script took, the
machine and its load; ``bench/results/SUMMARY.md`` puts every target of the earlier issues
(``bench/targets.py``) beside its measured figure.

    python -m bench.run                  # everything (what `make bench` runs)
    python -m bench.run --only gateway   # one script; the summary is rebuilt from all results
    python -m bench.run --summary-only   # rebuild SUMMARY.md from the JSON already there
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.targets import TARGETS, evaluate

HERE = Path(__file__).parent
RESULTS = HERE / "results"
NOT_SCRIPTS = {"run", "targets"}
# Arguments per script (defaults otherwise), sized so that the whole run fits in 15 minutes on
# this 2-core machine. The corpus-size sweep (1k/10k/100k chunks, with the query embedding) is
# bench.vectorstore's; bench.retrieval therefore skips its own `--scale` runs.
ARGUMENTS: dict[str, list[str]] = {
    # Every question extractively, streamed and in the default mode; generative (a local model
    # takes seconds per answer) on a deterministic subset with the set's share of unanswerable
    # ones.
    "answers": ["--generative-questions", "20"],
    "chat": ["--requests", "100"],
    # 400 of the public set's 1,000 questions: its corpus is embedded twice (with and without
    # titles), which is most of the run.
    "retrieval_quality": ["--queries", "400"],
    "gateway": ["--requests", "150"],
    "http_baseline": ["--requests", "1000"],
    "retrieval": ["--scale"],
    # A neighbour tenant of 10% (not 100%) of the measured one: the shard's optimizer (HNSW
    # build) dominates the run and grows with every point in the shard.
    "vectorstore": [
        *("--sizes", "1000", "10000", "100000"),
        *("--queries", "200", "--neighbour-fraction", "0.1", "--query-embedding"),
    ],
}
SCRIPT_TIMEOUT_S = 900


def scripts() -> list[str]:
    found = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name.startswith("_") or name in NOT_SCRIPTS:
            continue
        if 'if __name__ == "__main__":' in path.read_text():
            found.append(name)
    return found


def _load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def run_one(name: str) -> dict[str, Any]:
    command = [sys.executable, "-m", f"bench.{name}", *ARGUMENTS.get(name, [])]
    print(f"bench: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    load_before = _load()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, check=False
        )
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        returncode, stdout, stderr = -1, "", f"timed out after {expired.timeout} s"
    seconds = round(time.perf_counter() - started, 1)
    record: dict[str, Any] = {
        "command": " ".join(["python", *command[1:]]),
        "seconds": seconds,
        "returncode": returncode,
        "loadavg_1m_before": round(load_before[0], 2),
        "loadavg_1m_after": round(_load()[0], 2),
    }
    if returncode == 0:
        try:
            document = json.loads(stdout)
        except ValueError:
            record["error"] = "did not print one JSON document"
        else:
            (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    else:
        record["error"] = stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
    print(f"bench: {name} {seconds} s rc={returncode}", file=sys.stderr, flush=True)
    return record


def _results() -> dict[str, Any]:
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        found[path.stem] = json.loads(path.read_text())
    return found


def _figure(value: float | None) -> str:
    if value is None:
        return "no figure"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def summary(results: dict[str, Any]) -> str:
    run = results.get("run", {})
    lines = [
        "# Benchmark summary",
        "",
        "Written by `make bench` (`python -m bench.run`) from the JSON documents beside this file;",
        "the targets are those of the earlier issues (`bench/targets.py`). Explanations and the",
        "scaling figures: docs/PERFORMANCE.md.",
        "",
        f"- run finished: {run.get('finished_at', '?')}",
        f"- machine: {run.get('machine', {}).get('cpus', '?')} CPUs, Python "
        f"{run.get('machine', {}).get('python', '?')}, shared with other work "
        f"(1-minute load average {run.get('loadavg_1m_start', '?')} at the start, "
        f"{run.get('loadavg_1m_end', '?')} at the end)",
        f"- wall time of the whole run: {run.get('total_seconds', 'not a full run')} s",
        *(
            f"- re-run afterwards: {', '.join(r['only'])} ({r['finished_at']}, load average "
            f"{r['loadavg_1m_start']} → {r['loadavg_1m_end']}); its figures replace the full run's"
            for r in run.get("partial_reruns", [])
        ),
        "",
        "| issue | figure | target | measured | status |",
        "|---|---|---|---|---|",
    ]
    for target, value, met in evaluate(results):
        status = {True: "met", False: "**not met**", None: "reported"}[met]
        if value is None:
            status = "**missing**"
        unit = f" {target.unit}" if target.unit and value is not None else ""
        lines.append(
            f"| #{target.issue} | {target.what} | {target.wanted} | {_figure(value)}{unit} "
            f"| {status} |"
        )
    lines += ["", "| script | seconds | exit | load before → after |", "|---|---|---|---|"]
    for record in (run.get("scripts", {})[n] for n in sorted(run.get("scripts", {}))):
        lines.append(
            f"| `{record['command']}` | {record['seconds']} | {record['returncode']} "
            f"| {record['loadavg_1m_before']} → {record['loadavg_1m_after']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", default=None, help="run only these scripts")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    run_path = RESULTS / "run.json"
    run: dict[str, Any] = json.loads(run_path.read_text()) if run_path.exists() else {}
    failed = []
    if not args.summary_only:
        names = args.only or scripts()
        unknown = set(names) - set(scripts())
        if unknown:
            parser.error(f"not benchmark scripts: {sorted(unknown)}")
        from kernel.settings import ObservabilitySettings

        started = time.perf_counter()
        this = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_1m_start": round(_load()[0], 2),
        }
        run.setdefault("scripts", {})
        for name in names:
            run["scripts"][name] = record = run_one(name)
            if record["returncode"] != 0 or "error" in record:
                failed.append(name)
        this["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        this["loadavg_1m_end"] = round(_load()[0], 2)
        run["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        run["configuration"] = {
            "judge_sample_rate_percent": ObservabilitySettings().judge_sample_rate * 100
        }
        # Only a run of every script measures `make bench` itself; a partial re-run is noted
        # beside it (its scripts' records above are the re-run's).
        if args.only:
            run.setdefault("partial_reruns", []).append({**this, "only": names})
        else:
            run.update(this, total_seconds=round(time.perf_counter() - started, 1))
            run.pop("partial_reruns", None)
        run["targets"] = len(TARGETS)
        run_path.write_text(json.dumps(run, indent=2) + "\n")
    text = summary(_results())
    (RESULTS / "SUMMARY.md").write_text(text)
    print(text)
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
