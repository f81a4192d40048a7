"""Bar charts drawn on the server as SVG: no script, no styles inline, nothing from a CDN.

Each chart carries its own data table (for screen readers, and for anyone who wants the figures),
and the SVG uses presentation attributes only, which a strict Content-Security-Policy allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, PAD_TOP, PAD_BOTTOM = 640, 180, 12, 24


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    bars: list[Bar]
    rows: list[tuple[str, str]]
    peak: str
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(bar.height > 0 for bar in self.bars)


def bar_chart(
    chart_id: str,
    title: str,
    points: Sequence[tuple[str, float]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Chart:
    """``points``: (label, value) in display order, e.g. one per day."""
    peak = max((value for _, value in points), default=0.0)
    usable = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = WIDTH / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        height = usable * value / peak if peak > 0 else 0.0
        bars.append(
            Bar(
                x=round(i * slot + slot * 0.15, 2),
                y=round(PAD_TOP + usable - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                label=label,
                value=fmt(value),
            )
        )
    return Chart(
        id=chart_id,
        title=title,
        bars=bars,
        rows=[(label, fmt(value)) for label, value in points],
        peak=fmt(peak),
    )


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def dollars(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"
