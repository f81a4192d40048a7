"""The report of an evaluation run: ``report.json`` (every case), ``report.md`` (per tier) and
``frontier.png`` (quality against cost per question, the frontier tiers joined)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from app.eval.runner import EvalReport


def write_report(report: EvalReport, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "chart": out / "frontier.png",
    }
    paths["json"].write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    paths["markdown"].write_text(_markdown(report))
    _chart(report, paths["chart"])
    return paths


def _markdown(report: EvalReport) -> str:
    lines = [
        f"# Evaluation: {report.set_name}",
        "",
        "| tier | cases | errors | quality | groundedness | $ / question | $ total "
        "| tokens in / out | p50 ms | p95 ms | frontier |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in report.tiers:
        grounded = "—" if t.groundedness is None else f"{t.groundedness:.3f}"
        lines.append(
            f"| {t.tier} | {t.cases} | {t.errors} | {t.quality:.3f} | {grounded} "
            f"| {t.cost_usd_per_case:.6f} | {t.cost_usd_total:.6f} "
            f"| {t.input_tokens} / {t.output_tokens} | {t.latency_ms_p50} | {t.latency_ms_p95} "
            f"| {'yes' if t.on_frontier else 'no'} |"
        )
    lines += [
        "",
        "Quality: mean over cases of token F1 against the reference answer and/or the share of "
        "rubric phrases the answer contains. Cost: the gateway's settled usage at the tier's "
        "price table. Latency: the whole `POST /v1/chat`, as the client saw it.",
        "",
    ]
    return "\n".join(lines)


def _chart(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for t in report.tiers:
        ax.scatter(t.cost_usd_per_case, t.quality, s=70, zorder=3)
        ax.annotate(
            f"{t.tier}\n{t.latency_ms_p50:.0f} ms p50",
            (t.cost_usd_per_case, t.quality),
            textcoords="offset points",
            xytext=(8, 4),
            fontsize=9,
        )
    frontier = sorted((t for t in report.tiers if t.on_frontier), key=lambda t: t.cost_usd_per_case)
    if len(frontier) > 1:
        ax.plot(
            [t.cost_usd_per_case for t in frontier],
            [t.quality for t in frontier],
            linestyle="--",
            color="grey",
            zorder=2,
            label="quality/cost frontier",
        )
        ax.legend(loc="lower right")
    costs = [t.cost_usd_per_case for t in report.tiers]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: labels must not collide
    ax.set_xlabel("cost per question (USD)")
    ax.set_ylabel("quality (0 to 1)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{report.set_name}: quality against cost per tier")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
