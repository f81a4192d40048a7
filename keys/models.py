"""Regional key tables: which KMS key protects a tenant, and its wrapped data keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, Timestamped, UTCDateTime, utcnow


class TenantKms(Timestamped, RegionalBase):
    __tablename__ = "tenant_kms"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    key_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    aws_region: Mapped[str | None] = mapped_column(String(32), nullable=True)
    role_arn: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(1224), nullable=True)
    # A key the platform created for this tenant (destroyed when the tenant is purged), as
    # opposed to a customer's own key, which only the customer can destroy.
    managed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class WrappedDataKey(Timestamped, RegionalBase):
    """A tenant data key (DEK), stored only wrapped by the tenant's KMS key."""

    __tablename__ = "data_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    kms_key_id: Mapped[str] = mapped_column(String(2048), nullable=False)
