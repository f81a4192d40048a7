"""Envelope encryption for tenant data: KMS keys wrap per-tenant data keys (DEKs), DEKs seal data.

``Keyring`` is process-wide: it owns the KMS adapters of every region and a bounded, short-lived
cache of unwrapped DEKs (never persisted). ``TenantKeys`` is its per-request, tenant-scoped face:
it reads the tenant's wrapped DEKs from the tenant's own region, unwraps them through the
tenant's KMS key and seals/opens data with them.

Why the cache is keyed by a digest of the wrapped DEK and never by "the current version": a DEK
created in a transaction that later rolls back must never be reused for sealing, so the current
version is always read from the database (one indexed query) and only the unwrap is cached.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from cachetools import TTLCache
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.audit_events import AuditAction, AuditRecorder, ResourceType
from kernel.epochs import EpochCache
from kernel.settings import KeysSettings, Settings
from kernel.tenancy import TenantContext
from keys import envelope
from keys.adapters.aws import AwsKms, arn_region
from keys.adapters.local import LocalKms
from keys.errors import (
    KmsKeyRejected,
    KmsKeyWrongRegion,
    KmsProviderUnsupported,
    KmsUnavailable,
    TenantKeyUnavailable,
)
from keys.kms import (
    Context,
    KeyAccessDenied,
    KeyInvalid,
    KeyRef,
    KmsPort,
    KmsUnreachable,
    Provider,
)
from keys.models import TenantKms, WrappedDataKey
from keys.repositories import KeyRepository
from residency.errors import RegionUnavailable
from residency.registry import RegionRegistry

T = TypeVar("T")
R = TypeVar("R", TenantKms, WrappedDataKey)


def dek_context(ctx: TenantContext, version: int) -> Context:
    """The KMS EncryptionContext of a DEK: it unwraps only for this tenant, purpose and version."""
    return {"tenant_id": str(ctx.tenant_id), "purpose": "bulwark-dek", "version": str(version)}


def key_ref(config: TenantKms) -> KeyRef:
    return KeyRef(
        provider=cast(Provider, config.provider),
        key_id=config.key_id,
        aws_region=config.aws_region,
        role_arn=config.role_arn,
        external_id=config.external_id,
        tenant=str(config.tenant_id),
    )


def key_label(key_id: str) -> str:
    """How audit events name a KMS key: its id or ARN, or a digest of an unusually long one."""
    return key_id if len(key_id) <= 128 else hashlib.sha256(key_id.encode()).hexdigest()


def wrapped_by(row: WrappedDataKey, config: TenantKms) -> KeyRef:
    """The KMS key that wrapped ``row``; credentials and region come from the tenant's config."""
    return KeyRef(
        provider=cast(Provider, row.provider),
        key_id=row.kms_key_id,
        aws_region=config.aws_region,
        role_arn=config.role_arn,
        external_id=config.external_id,
        tenant=str(config.tenant_id),
    )


def _snapshot(row: R) -> R:
    """A copy of ``row`` bound to no session: it outlives its transaction (whose end may
    expire the original) and nothing done to it reaches the database."""
    columns = sa_inspect(type(row)).column_attrs
    return type(row)(**{column.key: getattr(row, column.key) for column in columns})


class Keyring:
    def __init__(self, registry: RegionRegistry, settings: KeysSettings) -> None:
        self.registry = registry
        self.settings = settings
        self._adapters: dict[tuple[str, str], KmsPort] = {}
        self._deks: TTLCache[tuple[bytes, ...], bytes] = TTLCache(
            maxsize=settings.dek_cache_size, ttl=max(settings.dek_cache_ttl_seconds, 1e-6)
        )
        self._lock = threading.Lock()
        # Each tenant's KMS configuration and current data-key row (wrapped: never a key in
        # the clear), as read under its epoch (``kernel.epochs``).
        self.rows: EpochCache[tuple[TenantKms, WrappedDataKey]] = EpochCache()

    @classmethod
    def from_settings(cls, settings: Settings, registry: RegionRegistry) -> Keyring:
        return cls(registry, settings.keys)

    def kms(self, region: str, provider: str) -> KmsPort:
        """The KMS adapter of ``provider`` in ``region`` (never another region's)."""
        plane = self.registry.region(region)
        cache_key = (region, provider)
        adapter = self._adapters.get(cache_key)
        if adapter is None:
            if provider == "local":
                if not plane.kms.key_file:
                    raise RegionUnavailable(region, "has no local KMS key file configured")
                adapter = LocalKms(Path(plane.kms.key_file))
            elif provider == "aws-kms":
                if not plane.kms.aws_region:
                    raise RegionUnavailable(region, "has no AWS KMS region configured")
                adapter = AwsKms(
                    default_region=plane.kms.aws_region, endpoint_url=plane.kms.endpoint_url
                )
            else:
                raise KeyInvalid(f"unknown KMS provider {provider!r}")
            self._adapters[cache_key] = adapter
        return adapter

    def for_tenant(self, session: AsyncSession, ctx: TenantContext) -> TenantKeys:
        return TenantKeys(self, KeyRepository(session, ctx), ctx)

    # DEK cache ---------------------------------------------------------------------------
    def cached(self, ctx: TenantContext, row: WrappedDataKey) -> bytes | None:
        if self.settings.dek_cache_ttl_seconds <= 0:
            return None
        with self._lock:
            dek: bytes | None = self._deks.get(self._cache_key(ctx, row))
            return dek

    def remember(self, ctx: TenantContext, row: WrappedDataKey, dek: bytes) -> None:
        if self.settings.dek_cache_ttl_seconds > 0:
            with self._lock:
                self._deks[self._cache_key(ctx, row)] = dek

    def forget_tenant(self, ctx: TenantContext) -> None:
        self.rows.forget(ctx.tenant_id)
        with self._lock:
            for key in [k for k in self._deks if k[0] == ctx.tenant_id.bytes]:
                self._deks.pop(key, None)

    @staticmethod
    def _cache_key(ctx: TenantContext, row: WrappedDataKey) -> tuple[bytes, ...]:
        return (
            ctx.tenant_id.bytes,
            row.version.to_bytes(4, "big"),
            hashlib.sha256(row.wrapped).digest(),
        )


@dataclass(frozen=True, slots=True)
class KmsStatus:
    config: TenantKms
    current_version: int
    versions: int


class TenantKeys:
    """One tenant's keys, inside one unit of work. Fails closed on any KMS refusal."""

    def __init__(self, keyring: Keyring, keys: KeyRepository, ctx: TenantContext) -> None:
        self.keyring = keyring
        self.keys = keys
        self.ctx = ctx
        # Rows read within this unit of work (never the unwrapped keys: those live only in the
        # TTL-bounded keyring cache, so a revocation still applies within the TTL).
        self._config_row: TenantKms | None = None
        self._rows: dict[int, WrappedDataKey] = {}
        self._current: WrappedDataKey | None = None
        # Administration (configure, rotate, shred) reads and changes rows in its own session
        # only: nothing it touches comes from, or goes to, the keyring's epoch cache.
        self._own_rows_only = False

    def _forget_rows(self) -> None:
        self._config_row, self._rows, self._current = None, {}, None
        self._own_rows_only = True

    async def _kms(self, provider: str, call: Callable[[KmsPort], Awaitable[T]]) -> T:
        try:
            return await call(self.keyring.kms(self.ctx.region, provider))
        except (KeyAccessDenied, KeyInvalid):
            raise TenantKeyUnavailable() from None
        except KmsUnreachable as exc:
            raise KmsUnavailable(self.ctx.region) from exc

    # provisioning --------------------------------------------------------------------------
    async def provision(self) -> TenantKms:
        """Give a tenant its own KMS key (platform-managed) and DEK version 1, once."""
        existing = await self.keys.config()
        if existing is not None:
            return existing
        plane = self.keyring.registry.region(self.ctx.region)
        provider = plane.kms.provider
        ref = await self._kms(
            provider,
            lambda kms: kms.create_key(
                description="bulwark tenant data keys", owner=str(self.ctx.tenant_id)
            ),
        )
        config = TenantKms(
            provider=provider, key_id=ref.key_id, aws_region=ref.aws_region, managed=True
        )
        try:
            async with self.keys.session.begin_nested():
                await self.keys.add(config)
                await self._new_version(config, 1)
        except IntegrityError:
            # A concurrent request provisioned first; use its key (ours stays unused).
            config = await self.keys.config()  # type: ignore[assignment]
        return config

    async def _new_version(self, config: TenantKms, version: int) -> WrappedDataKey:
        generated = await self._kms(
            config.provider,
            lambda kms: kms.generate_data_key(key_ref(config), dek_context(self.ctx, version)),
        )
        row = WrappedDataKey(
            version=version,
            wrapped=generated.wrapped,
            provider=config.provider,
            kms_key_id=config.key_id,
        )
        await self.keys.add(row)
        return row

    # unwrap --------------------------------------------------------------------------------
    async def _unwrap(self, row: WrappedDataKey, config: TenantKms) -> bytes:
        dek = self.keyring.cached(self.ctx, row)
        if dek is None:
            ref = wrapped_by(row, config)
            dek = await self._kms(
                row.provider,
                lambda kms: kms.decrypt(ref, row.wrapped, dek_context(self.ctx, row.version)),
            )
            if len(dek) != envelope.DEK_BYTES:
                # Not what was wrapped (every DEK is 32 bytes): a reply mangled on its way
                # from the KMS. Never cached, never used to seal.
                raise KmsUnavailable(self.ctx.region)
            self.keyring.remember(self.ctx, row, dek)
        return dek

    def _from_epoch_cache(self) -> None:
        if self._config_row is None and not self._own_rows_only:
            held = self.keyring.rows.get(self.ctx)
            if held is not None:
                self._config_row, self._current = held
                self._rows[held[1].version] = held[1]

    async def _config(self) -> TenantKms:
        self._from_epoch_cache()
        if self._config_row is None:
            config = await self.keys.config()
            if config is None:
                # Provisioned in this (uncommitted) unit of work: nothing of it may be cached,
                # or it would outlive a rollback.
                self._own_rows_only = True
                config = await self.provision()
            self._config_row = config
        return self._config_row

    async def current(self) -> tuple[int, bytes]:
        self._from_epoch_cache()
        read = self._current is None
        config = await self._config()
        row = self._current or await self.keys.current()
        if row is None:
            read = False
            row = await self._new_version(config, 1)
        self._current = self._rows[row.version] = row
        if read and not self._own_rows_only:
            # Only rows read from the database: one written in this (uncommitted) unit of
            # work must not outlive a rollback.
            self.keyring.rows.put(self.ctx, (_snapshot(config), _snapshot(row)))
        return row.version, await self._unwrap(row, config)

    async def require_usable(self) -> None:
        """Fail closed (503) unless the tenant's current DEK unwraps now (or within the TTL)."""
        await self.current()

    # seal / open ---------------------------------------------------------------------------
    async def seal(self, kind: str, object_id: str, plaintext: bytes) -> bytes:
        version, dek = await self.current()
        return envelope.seal(dek, version, self.ctx.tenant_id, kind, object_id, plaintext)

    async def open(self, kind: str, object_id: str, blob: bytes) -> bytes:
        version = envelope.header_version(blob)
        config = await self._config()
        row = self._rows.get(version) or await self.keys.version(version)
        if row is None:
            raise TenantKeyUnavailable()
        self._rows[version] = row
        dek = await self._unwrap(row, config)
        return envelope.open_(dek, self.ctx.tenant_id, kind, object_id, blob)

    # administration ------------------------------------------------------------------------
    async def status(self) -> KmsStatus:
        config = await self._config()
        current = await self.keys.current()
        return KmsStatus(
            config=config,
            current_version=current.version if current else 0,
            versions=await self.keys.count(),
        )

    async def configure(self, new: KeyRef, audit: AuditRecorder) -> tuple[KmsStatus, int]:
        """Switch to another KMS key after a real round trip; re-wrap every DEK under it."""
        self._forget_rows()
        plane = self.keyring.registry.region(self.ctx.region)
        if new.provider == "aws-kms" and not plane.kms.aws_region:
            raise KmsProviderUnsupported(new.provider, self.ctx.region)
        if new.provider == "local" and not plane.kms.key_file:
            raise KmsProviderUnsupported(new.provider, self.ctx.region)
        required = plane.kms.aws_region if new.provider == "aws-kms" else self.ctx.region
        if new.aws_region != required:
            raise KmsKeyWrongRegion(new.aws_region, required)
        written = arn_region(new.key_id)
        if new.provider == "aws-kms" and written is not None and written != required:
            raise KmsKeyWrongRegion(written, required)
        await self._round_trip(new)

        config = await self._config()
        rewrapped = await self._rewrap_all(config, new)
        config.provider, config.key_id = new.provider, new.key_id
        config.aws_region = new.aws_region if new.provider == "aws-kms" else None
        config.role_arn, config.external_id, config.managed = (new.role_arn, new.external_id, False)
        await self.keys.session.flush()
        self.keyring.forget_tenant(self.ctx)
        status = await self.status()
        await audit.record(
            AuditAction.KMS_CONFIGURED,
            resource_type=ResourceType.KMS_KEY,
            resource_id=key_label(new.key_id),
            detail={
                "provider": new.provider,
                "rewrapped": rewrapped,
                "version": status.current_version,
            },
        )
        return status, rewrapped

    async def rotate(self, audit: AuditRecorder) -> tuple[KmsStatus, int]:
        """A new DEK version for new data; older versions stay to open older data."""
        self._forget_rows()
        config = await self._config()
        rewrapped = await self._rewrap_all(config, key_ref(config))
        current = await self.keys.current()
        await self._new_version(config, (current.version if current else 0) + 1)
        self.keyring.forget_tenant(self.ctx)
        status = await self.status()
        await audit.record(
            AuditAction.KMS_ROTATED,
            resource_type=ResourceType.KMS_KEY,
            resource_id=key_label(config.key_id),
            detail={"version": status.current_version, "rewrapped": rewrapped},
        )
        return status, rewrapped

    async def _round_trip(self, ref: KeyRef) -> None:
        context = {"tenant_id": str(self.ctx.tenant_id), "purpose": "bulwark-key-check"}
        try:
            kms = self.keyring.kms(self.ctx.region, ref.provider)
            generated = await kms.generate_data_key(ref, context)
            if await kms.decrypt(ref, generated.wrapped, context) != generated.plaintext:
                raise KmsKeyRejected("unwrap returned a different key")
        except (KeyAccessDenied, KeyInvalid) as exc:
            raise KmsKeyRejected(str(exc) or type(exc).__name__) from None
        except KmsUnreachable:
            raise KmsUnavailable(self.ctx.region) from None

    async def _rewrap_all(self, config: TenantKms, destination: KeyRef) -> int:
        """Re-wrap every DEK not yet wrapped by ``destination`` (ReEncrypt where possible)."""
        count = 0
        for row in await self.keys.all_versions():
            if row.kms_key_id != destination.key_id or row.provider != destination.provider:
                await self._rewrap(row, config, destination)
                count += 1
        await self.keys.session.flush()
        return count

    async def _rewrap(self, row: WrappedDataKey, config: TenantKms, destination: KeyRef) -> None:
        source = wrapped_by(row, config)
        context = dek_context(self.ctx, row.version)
        wrapped = row.wrapped
        if source.provider == destination.provider:
            row.wrapped = await self._kms(
                source.provider, lambda kms: kms.re_encrypt(source, wrapped, context, destination)
            )
        else:
            plaintext = await self._kms(
                source.provider, lambda kms: kms.decrypt(source, wrapped, context)
            )
            row.wrapped = await self._kms(
                destination.provider, lambda kms: kms.encrypt(destination, plaintext, context)
            )
        row.provider, row.kms_key_id = destination.provider, destination.key_id

    async def shred(self) -> None:
        """Crypto-shredding: destroy the DEKs and, when the platform owns it, the KMS key.

        Copies of the ciphertext (object store, database backups) become unreadable once the
        key is gone; a customer-owned key is left for the customer to destroy.
        """
        self._forget_rows()
        config = await self.keys.config()
        await self.keys.destroy_all()
        self.keyring.forget_tenant(self.ctx)
        if config is not None and config.managed:
            await self._kms(config.provider, lambda kms: kms.destroy_key(key_ref(config)))
