"""What the console's pages show, gathered from the REST API (never from the stores directly).

The overview is the one page that combines several answers: the usage ledger by day (requests,
tokens, cost) and the audit log's chat answers (cache status, fallback) and guardrail trips, each
counted per UTC day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.console.adapters import ConsoleApi
from app.console.charts import Chart, bar_chart, dollars, percent, ratio

OVERVIEW_DAYS = 14
# At most this many audit events are read per kind for the overview (500 a page).
EVENT_PAGES = 20


@dataclass(frozen=True, slots=True)
class Overview:
    days: int
    charts: list[Chart]
    totals: dict[str, str]
    truncated: bool


async def _events(api: ConsoleApi, action: str, since: str) -> tuple[list[dict[str, Any]], bool]:
    events: list[dict[str, Any]] = []
    cursor = 0
    for _ in range(EVENT_PAGES):
        page = await api.get(
            "/v1/audit/events", action=action, since=since, cursor=cursor, limit=500
        )
        events.extend(page["items"])
        if page.get("next_cursor") is None:
            return events, False
        cursor = page["next_cursor"]
    return events, True


async def overview(api: ConsoleApi, *, today: datetime | None = None) -> Overview:
    today = (today or datetime.now(UTC)).astimezone(UTC)
    days = [
        (today - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(OVERVIEW_DAYS - 1, -1, -1)
    ]
    usage = await api.get("/v1/usage", group_by="day", since=days[0], until=days[-1])
    by_day = {item["key"]: item for item in usage["items"]}
    since = f"{days[0]}T00:00:00Z"
    answers, cut_answers = await _events(api, "chat.answered", since)
    trips, cut_trips = await _events(api, "dlp.tripped", since)

    answered: Counter[str] = Counter()
    cached: Counter[str] = Counter()
    fell_back: Counter[str] = Counter()
    for event in answers:
        day = event["occurred_at"][:10]
        answered[day] += 1
        detail = event.get("detail") or {}
        cached[day] += detail.get("cache") in ("exact", "semantic")
        fell_back[day] += bool(detail.get("fallback"))
    tripped = Counter(event["occurred_at"][:10] for event in trips)

    def short(day: str) -> str:
        return day[5:]

    def series(pick: Any) -> list[tuple[str, float]]:
        return [(short(day), float(pick(day))) for day in days]

    charts = [
        bar_chart(
            "requests",
            "Model requests per day",
            series(lambda d: by_day.get(d, {}).get("calls", 0)),
        ),
        bar_chart(
            "tokens",
            "Tokens per day (input + output)",
            series(
                lambda d: (
                    by_day.get(d, {}).get("input_tokens", 0)
                    + by_day.get(d, {}).get("output_tokens", 0)
                )
            ),
        ),
        bar_chart(
            "cost",
            "Cost per day (USD)",
            series(lambda d: by_day.get(d, {}).get("cost_usd", 0.0)),
            fmt=dollars,
        ),
        bar_chart(
            "cache",
            "Cache hit ratio of chat answers",
            series(lambda d: ratio(cached[d], answered[d])),
            fmt=percent,
        ),
        bar_chart(
            "fallback",
            "Fallback rate of chat answers",
            series(lambda d: ratio(fell_back[d], answered[d])),
            fmt=percent,
        ),
        bar_chart(
            "trips", "Guardrail trips (DLP and injection) per day", series(lambda d: tripped[d])
        ),
    ]
    total_answers = sum(answered.values())
    tokens = sum(int(i["input_tokens"]) + int(i["output_tokens"]) for i in usage["items"])
    totals = {
        "Model requests": f"{sum(int(i['calls']) for i in usage['items']):,}",
        "Tokens": f"{tokens:,}",
        "Cost": dollars(sum(float(i["cost_usd"]) for i in usage["items"])),
        "Chat answers": f"{total_answers:,}",
        "Cache hit ratio": percent(ratio(sum(cached.values()), total_answers)),
        "Fallback rate": percent(ratio(sum(fell_back.values()), total_answers)),
        "Guardrail trips": f"{sum(tripped.values()):,}",
    }
    return Overview(OVERVIEW_DAYS, charts, totals, cut_answers or cut_trips)
