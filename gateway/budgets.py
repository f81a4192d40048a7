"""Quota budgets: what a call charges against its tenant's and its user's quotas, per UTC day
and month.

Admission (``gateway.admission``) reserves a call's worst-case cost — its prompt plus
``max_output`` tokens, at the dearest candidate's price — on every counter with a limit, in the
regional database; settlement (``gateway.settlement``) releases the reservation and adds the
actual usage. A counter without a limit is not reserved (nothing to enforce; settlement still
adds the usage). A reservation is a lease: one never settled within
``reservation_lease_seconds`` (its process died) is released by a later admission in its tenant
(``release_expired``), its usage unknown (zero).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog

from gateway.configuration import TenantGatewayConfig
from gateway.repositories import (
    CounterCharge,
    CounterRepository,
    ReservationRepository,
    charges_of,
)
from gateway.requests import Caller, PreparedCall

log = structlog.get_logger("bulwark.gateway")


def periods(now: datetime) -> list[tuple[str, str, int]]:
    """(period name, counter key, seconds until it resets) for the current UTC day and month."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    next_month = datetime(year, month, 1, tzinfo=UTC)
    return [
        ("day", f"d{now:%Y-%m-%d}", int((tomorrow - now).total_seconds()) + 1),
        ("month", f"m{now:%Y-%m}", int((next_month - now).total_seconds()) + 1),
    ]


@functools.lru_cache(maxsize=4)
def period_keys(day: date) -> tuple[tuple[str, str], ...]:
    """(period name, counter key) of the day's and the month's counters."""
    return (("day", f"d{day:%Y-%m-%d}"), ("month", f"m{day:%Y-%m}"))


def limit(quotas: dict[str, Any], scope: str, period: str, kind: str) -> int | None:
    value = ((quotas.get(scope) or {}).get(period) or {}).get(kind)
    return int(value) if value is not None else None


def charges(
    caller: Caller, prepared: PreparedCall, config: TenantGatewayConfig, now: datetime
) -> tuple[list[CounterCharge], list[CounterCharge]]:
    """The counters a call charges (its tenant's and its user's, per day and month), and
    those of them with a limit to enforce, in the order they are locked."""
    charged: list[CounterCharge] = []
    scopes = ["tenant"] + ([f"user:{caller.user_id}"] if caller.user_id else [])
    for scope in scopes:
        quota_scope = "tenant" if scope == "tenant" else "user"
        for period, key in period_keys(now.date()):
            max_tokens = limit(config.quotas, quota_scope, period, "tokens")
            max_microdollars = limit(config.quotas, quota_scope, period, "microdollars")
            limited = max_tokens is not None or max_microdollars is not None
            # A counter without a limit needs no reservation (nothing to enforce): the call
            # saves a write here and settlement still adds its actual usage.
            charged.append(
                CounterCharge(
                    scope=scope,
                    period=key,
                    tokens=prepared.reserved_tokens if limited else 0,
                    microdollars=prepared.reserved_microdollars if limited else 0,
                    max_tokens=max_tokens,
                    max_microdollars=max_microdollars,
                )
            )
    enforced = [
        charge
        for charge in sorted(charged, key=lambda c: (c.scope, c.period))
        if charge.max_tokens is not None or charge.max_microdollars is not None
    ]
    return charged, enforced


async def release_expired(
    reservations: ReservationRepository, counters: CounterRepository, now: datetime
) -> None:
    """Release the reservations of calls never settled within their lease (their process
    died): what they held becomes available again, their usage stays unknown (zero)."""
    # Every expired reservation is taken before any counter is touched: the order a
    # settlement locks them in (reservation, then counters), so the two never deadlock.
    taken = [r for r in await reservations.expired(now) if await reservations.take(r.call_id)]
    for expired in taken:
        held = sorted(charges_of(expired), key=lambda c: (c.scope, c.period))
        await counters.settle(held, actual=(0, 0))
        log.warning("gateway_reservation_expired", call_id=str(expired.call_id))
