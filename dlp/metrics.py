"""The DLP trip counter on the process's Prometheus registry (served at /metrics).

A tenant label per tenant would let a large fleet blow up the series count, so the label holds a
tenant id for the first ``MAX_TENANT_LABELS`` tenants this process sees and ``other`` after
that; the audit log keeps the exact per-tenant record.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter

MAX_TENANT_LABELS = 500
OTHER = "other"

TRIPS = Counter(
    "bulwark_dlp_trips",
    "DLP and injection-guard trips: entity type or injection kind, direction, action.",
    ("tenant", "direction", "kind", "action"),
)

_seen: set[str] = set()
_lock = threading.Lock()


def tenant_label(tenant_id: str) -> str:
    with _lock:
        if tenant_id in _seen:
            return tenant_id
        if len(_seen) < MAX_TENANT_LABELS:
            _seen.add(tenant_id)
            return tenant_id
    return OTHER


def count_trip(tenant_id: str, direction: str, kind: str, action: str, amount: int = 1) -> None:
    TRIPS.labels(tenant_label(tenant_id), direction, kind, action).inc(amount)
