"""Regional, tenant-owned identity tables. Cross-row references include ``tenant_id`` in their
foreign keys, so a row can never point at another tenant's user or group even by a bug."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import RegionalBase, TenantOwned, Timestamped, UTCDateTime, utcnow


class User(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "user_name"),
        UniqueConstraint("tenant_id", "external_id"),
        UniqueConstraint("tenant_id", "idp_subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    # SCIM userName (the IdP's login name; defaults to the email), the IdP's externalId, and the
    # SSO subject (OIDC ``sub`` / SAML NameID) that JIT provisioning matches on.
    user_name: Mapped[str] = mapped_column(String(320), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    idp_subject: Mapped[str | None] = mapped_column(String(256), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Further SCIM attributes (core and EnterpriseUser) as sent by the IdP.
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    source: Mapped[str] = mapped_column(
        String(16), nullable=False, default="api", server_default="api"
    )
    # Document ABAC: highest classification the user may read (0 public .. 3 restricted) and
    # attributes (key -> values) a document's attribute constraints are checked against.
    clearance: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    attributes: Mapped[dict[str, list[str]]] = mapped_column(JSON, nullable=False, default=dict)
    # Bumped on every change: the SCIM ETag (meta.version).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class Group(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "external_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=func.current_timestamp(),
    )


class Membership(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "memberships"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "group_id"], ["groups.tenant_id", "groups.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class ApiKey(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # HMAC-SHA256 of the secret under the deployment's secret key; the secret itself is never kept.
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hint: Mapped[str] = mapped_column(String(8), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdentitySettingsRow(Timestamped, RegionalBase):
    """Per-tenant identity settings: the role a new user gets when no mapping applies."""

    __tablename__ = "identity_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    default_role: Mapped[str] = mapped_column(String(32), nullable=False, default="member")
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class RoleMapping(TenantOwned, Timestamped, RegionalBase):
    """IdP group (by name or external id) -> Bulwark role."""

    __tablename__ = "role_mappings"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "idp_group", "role"),)

    idp_group: Mapped[str] = mapped_column(String(256), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)


class IdentityProvider(Timestamped, RegionalBase):
    """A tenant's OIDC or SAML IdP. Secrets (the OIDC client secret) are sealed with the
    tenant's keys; the rest of the configuration is not secret."""

    __tablename__ = "identity_providers"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class UserSession(TenantOwned, Timestamped, RegionalBase):
    """A Bulwark session after SSO: short-lived, stored hashed, revocable server-side."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    auth_method: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScimToken(TenantOwned, Timestamped, RegionalBase):
    __tablename__ = "scim_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hint: Mapped[str] = mapped_column(String(8), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SamlAssertion(TenantOwned, Timestamped, RegionalBase):
    """Replay cache: an assertion id is accepted once (kept until it could no longer be valid)."""

    __tablename__ = "saml_assertions"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "assertion_id"),)

    assertion_id: Mapped[str] = mapped_column(String(256), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class AuthEpoch(RegionalBase):
    """A tenant's identity and configuration generation, for the principal cache
    (``auth.principals``) and the configuration kept in memory (``kernel.epochs``).

    Database triggers (migrations ``r0011_auth_epochs`` and ``r0013_config_epochs``) set a fresh
    random value whenever a row a principal is built from changes — users, groups, memberships,
    role mappings, API keys, sessions — or a configuration row read on every request — KMS
    configuration, data keys, chat, DLP and model policies, BYO models — in the same transaction
    as the change, whatever code (or SQL) made it. A cached principal or configuration is
    served only while its tenant's epoch is the one it was loaded under, so a revocation, a
    membership change or a policy change applies to the very next request on every replica.
    The value is a counter of no meaning: RLS lets any tenant scope read it.
    """

    __tablename__ = "auth_epochs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)
