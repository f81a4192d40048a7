"""The tenant's chat policy: read (defaults when never set, kept under the tenant's epoch for
the chat pipeline) and replace (audited)."""

from __future__ import annotations

import hashlib

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from audit.canon import canonical_json
from audit.services import AuditLog
from chat.repositories import ChatPolicyRepository
from chat.schemas import ChatPolicyBody
from kernel.audit_events import AuditAction, ResourceType
from kernel.epochs import EpochCache
from kernel.tenancy import TenantContext


class ChatPolicyService:
    """The tenant's chat policy: read (defaults when never set) and replace (audited)."""

    def __init__(self, session: AsyncSession, ctx: TenantContext, audit: AuditLog) -> None:
        self.session = session
        self.ctx = ctx
        self.audit = audit

    async def current(self) -> ChatPolicyBody:
        return await policy_of(self.session, self.ctx)

    async def replace(self, policy: ChatPolicyBody) -> ChatPolicyBody:
        body = msgspec.to_builtins(policy)
        await ChatPolicyRepository(self.session, self.ctx).put(body)
        # The hash of the policy as ``GET /v1/admin/chat`` returns it, in RFC 8785 canonical
        # JSON: anyone holding the policy can recompute it.
        canonical = canonical_json(body)
        await self.audit.record(
            AuditAction.CHAT_POLICY_UPDATED,
            resource_type=ResourceType.CHAT_POLICY,
            resource_id=None,
            detail={
                "mode": str(policy.mode),
                "cache_enabled": policy.cache_enabled,
                "policy_sha256": hashlib.sha256(canonical).hexdigest(),
            },
        )
        return policy


async def policy_of(session: AsyncSession, ctx: TenantContext) -> ChatPolicyBody:
    row = await ChatPolicyRepository(session, ctx).get()
    if row is None:
        return ChatPolicyBody()
    return msgspec.convert(row.policy, ChatPolicyBody)


async def cached_policy(
    session: AsyncSession, ctx: TenantContext, policies: EpochCache[ChatPolicyBody]
) -> ChatPolicyBody:
    """The tenant's policy from ``policies`` when kept for the context's epoch, else read (in
    ``session``, a transaction that began after the epoch was read) and kept."""
    policy = policies.get(ctx)
    if policy is None:
        policy = await policy_of(session, ctx)
        policies.put(ctx, policy)
    return policy
