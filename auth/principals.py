"""The principal cache: API keys and sessions turned into contexts without rebuilding them.

Building a principal reads the credential, the user, their groups and the role mappings in the
tenant's region. The cache keeps the result per credential, with three guards checked on every
hit (``Entry.serves``):

- the secret is verified against the credential's stored HMAC, as on a miss;
- the tenant's control-plane record (id, slug, region, status, deletion) read for this request
  is the one the entry was built with;
- the tenant's identity epoch read for this request is the one the entry was built under. The
  epoch is set afresh by database triggers in the same transaction as any change to a user,
  group, membership, role mapping, key or session (``auth.models.AuthEpoch``), so a revocation,
  deactivation or membership change — through the API, SCIM, SSO, the CLI or another replica —
  makes the very next request rebuild its principal.

The epoch is read *before* a principal is built, never after, so a change that commits while one
is being built leaves it filed under the older epoch, which the next read no longer matches.
A session's expiry is kept with its entry and checked on every hit.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from auth import apikeys
from kernel.tenancy import TenantContext, TenantRoute

RouteKey = tuple[uuid.UUID, str, str, str, bool]


def route_key(route: TenantRoute) -> RouteKey:
    return (route.id, route.slug, route.region, route.status, route.deleted)


@dataclass(frozen=True, slots=True)
class Entry:
    secret_hash: str
    route: RouteKey
    epoch: int
    expires_at: datetime | None
    ctx: TenantContext

    def serves(
        self, secret: str, pepper: str, route: TenantRoute, epoch: int, now: datetime
    ) -> bool:
        return (
            self.epoch == epoch
            and self.route == route_key(route)
            and (self.expires_at is None or self.expires_at > now)
            and apikeys.verify_secret(secret, self.secret_hash, pepper)
        )


class PrincipalCache:
    """A bounded LRU of ``Entry`` by (credential kind, credential id); ``size`` 0 turns it off."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, uuid.UUID], Entry] = OrderedDict()

    def get(self, kind: str, credential_id: uuid.UUID) -> Entry | None:
        entry = self._entries.get((kind, credential_id))
        if entry is not None:
            self._entries.move_to_end((kind, credential_id))
        return entry

    def put(self, kind: str, credential_id: uuid.UUID, entry: Entry) -> None:
        if self.size <= 0:
            return
        self._entries[(kind, credential_id)] = entry
        self._entries.move_to_end((kind, credential_id))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
