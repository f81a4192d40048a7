"""The DLP trip counter on the process's Prometheus registry (served at /metrics); tenant
labels are bounded (``kernel.observability.tenant_label``), the audit log keeps the exact record."""

from __future__ import annotations

from prometheus_client import Counter

from kernel.observability import tenant_label

TRIPS = Counter(
    "bulwark_dlp_trips",
    "DLP and injection-guard trips: entity type or injection kind, direction, action.",
    ("tenant", "direction", "kind", "action"),
)


def count_trip(tenant_id: str, direction: str, kind: str, action: str, amount: int = 1) -> None:
    TRIPS.labels(tenant_label(tenant_id), direction, kind, action).inc(amount)
