"""Regional, tenant-owned tables of the gateway.

- ``gateway_policies``: a tenant's model policy, quota limits and request-rate limits (one row).
- ``gateway_byo_models``: a tenant's own model endpoint replacing one tier; its secret is sealed
  with the tenant's keys and never returned.
- ``gateway_counters``: usage per scope (tenant, or one user) and period (a UTC day or month),
  settled plus reserved; quota checks are single atomic upserts on these rows.
- ``gateway_rate_windows``: request counts per identity or tenant and minute, across replicas.
- ``gateway_reservations``: the open quota reservations, one row per admitted call until it is
  settled; a lease, released by a later admission if its call was never settled (a crash).
- ``gateway_usage``: the ledger, one row per settled gateway call (never prompt text).
- ``gateway_batches`` / ``gateway_batch_items``: the batch track; requests and results sealed.

Money is stored as integer micro-dollars: a price in dollars per million tokens is exactly the
cost in micro-dollars of one token.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime, utcnow


class GatewayPolicy(TenantOwned, RegionalBase):
    __tablename__ = "gateway_policies"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_policy: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    quotas: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    identity_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tenant_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class ByoModel(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "gateway_byo_models"
    __table_args__ = (UniqueConstraint("tenant_id", "tier"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    base_url: Mapped[str] = mapped_column(String(512), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    sealed_api_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    input_price_per_mtok: Mapped[float] = mapped_column(Float, nullable=False)
    output_price_per_mtok: Mapped[float] = mapped_column(Float, nullable=False)
    context_window: Mapped[int] = mapped_column(Integer, nullable=False)
    max_concurrency: Mapped[int] = mapped_column(Integer, nullable=False)
    timeout_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class UsageCounter(TenantOwned, RegionalBase):
    __tablename__ = "gateway_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "period"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # "tenant" or "user:<uuid>"
    scope: Mapped[str] = mapped_column(String(64), nullable=False)
    # "d2026-11-29" or "m2026-11"
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    used_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    used_microdollars: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reserved_microdollars: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class RateWindow(TenantOwned, RegionalBase):
    __tablename__ = "gateway_rate_windows"
    __table_args__ = (UniqueConstraint("tenant_id", "subject", "window"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subject: Mapped[str] = mapped_column(String(64), nullable=False)
    window: Mapped[int] = mapped_column(BigInteger, nullable=False)  # epoch minute
    # Admissions handed out (to the replicas, in blocks), and the size of the last block.
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    granted: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class Reservation(TenantOwned, RegionalBase):
    __tablename__ = "gateway_reservations"
    __table_args__ = (Index("ix_gateway_reservations_expiry", "tenant_id", "expires_at"),)

    call_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # [{scope, period, tokens, microdollars}]: what each counter holds for this call.
    charges: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class UsageRecord(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "gateway_usage"
    __table_args__ = (UniqueConstraint("tenant_id", "call_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    track: Mapped[str] = mapped_column(String(16), nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    endpoint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    cost_microdollars: Mapped[int] = mapped_column(BigInteger, nullable=False)
    prompt_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    day: Mapped[str] = mapped_column(String(10), nullable=False, index=True)


class Batch(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "gateway_batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    item_count: Mapped[int] = mapped_column(Integer, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BatchItem(TenantOwned, RegionalBase):
    __tablename__ = "gateway_batch_items"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    sealed_request: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed_result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
