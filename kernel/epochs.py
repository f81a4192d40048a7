"""Per-tenant values kept under the tenant's epoch.

The epoch (``auth.models.AuthEpoch``) is set afresh by database triggers in the same transaction
as any change to the rows a principal is built from, and to the tenant's configuration rows read
on every request: its KMS configuration and data keys, its chat, DLP and model policies and its
BYO models (migrations ``r0011_auth_epochs`` and ``r0013_config_epochs``). Authentication reads
it for every request made with an API key or a session and stamps it on the request's context
(``TenantContext.epoch``).

A value read in a transaction that began after that read is at least as new as the epoch, so it
may be served to any later request of the same epoch: a change made anywhere — this replica,
another one, the CLI, plain SQL — gives the next request a new epoch and so a fresh read. A
context without an epoch (IdP tokens, SCIM, system work) always reads.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Generic, TypeVar

from kernel.tenancy import TenantContext

T = TypeVar("T")


class EpochCache(Generic[T]):
    """One value per tenant, served only to contexts of the epoch it was stored under."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._values: OrderedDict[uuid.UUID, tuple[int, T]] = OrderedDict()

    def get(self, ctx: TenantContext) -> T | None:
        if ctx.epoch is None:
            return None
        held = self._values.get(ctx.tenant_id)
        if held is None or held[0] != ctx.epoch:
            return None
        self._values.move_to_end(ctx.tenant_id)
        return held[1]

    def put(self, ctx: TenantContext, value: T) -> None:
        """Keep ``value``, read from the database in a transaction that began after the
        context's epoch was read (never a value this request wrote and has not committed)."""
        if ctx.epoch is None or self.size <= 0:
            return
        self._values[ctx.tenant_id] = (ctx.epoch, value)
        self._values.move_to_end(ctx.tenant_id)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._values.pop(tenant_id, None)

    def __len__(self) -> int:
        return len(self._values)
