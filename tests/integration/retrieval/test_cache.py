"""The ACL-aware semantic cache over real stores: exact and semantic hits, near misses that must
miss, access checked at hit time, invalidation on ACL change and deletion, tenant isolation,
subject erasure and expiry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.runtime import Runtime
from kernel.tenancy import TenantContext, TenantRoute
from retrieval.cache.services import CacheLookup, CachePolicy, SemanticCache
from tests.retrieval_world import principal
from tests.support.documents import add, member
from tests.support.tenants import Api, TenantHandle

QUESTION = "What is the hotel limit per night in Paris?"
ANSWER = {"answer": "180 euros per night [1].", "citations": [{"n": 1}]}
SCOPE = {"mode": "generative", "top_k": 5, "filters": {}}


def route_of(tenant: TenantHandle) -> TenantRoute:
    return TenantRoute(uuid.UUID(tenant.id), tenant.slug, tenant.region, "active")


class Cache:
    """The cache as the chat pipeline uses it: one regional transaction per call."""

    def __init__(self, runtime: Runtime, policy: CachePolicy | None = None) -> None:
        self.runtime = runtime
        self.policy = policy or CachePolicy()

    @asynccontextmanager
    async def open(self, ctx: TenantContext) -> AsyncIterator[SemanticCache]:
        async with self.runtime.registry.tenant_transaction(ctx) as session:
            yield SemanticCache(
                ctx,
                session,
                self.runtime.keyring.for_tenant(session, ctx),
                await self.runtime.knowledge.questions(ctx),
                pepper=self.runtime.pepper,
                policy=self.policy,
            )

    async def vector(self, text: str) -> list[float]:
        embedded = await self.runtime.knowledge.embedder.embed_async([text])
        return [float(x) for x in embedded[0]]

    async def put(self, ctx: TenantContext, question: str, document_id: str) -> uuid.UUID | None:
        async with self.open(ctx) as cache:
            return await cache.store(
                question, await self.vector(question), SCOPE, ANSWER, {uuid.UUID(document_id): 1}
            )

    async def get(
        self, ctx: TenantContext, question: str, scope: dict | None = None
    ) -> CacheLookup:
        async with self.open(ctx) as cache:
            return await cache.lookup(question, await self.vector(question), scope or SCOPE)


async def test_hits_only_for_the_same_question_and_only_for_readers(
    api: Api, runtime: Runtime
) -> None:
    tenant = await api.new_tenant()
    finance = await api.new_group(tenant, "finance")
    reader, _ = await member(api, tenant)
    await api.client.put(
        f"/v1/admin/groups/{finance['id']}/members/{reader['id']}", headers=tenant.admin
    )
    outsider, _ = await member(api, tenant)
    doc = await add(
        api, tenant, "Travel", "# Hotels\n\nParis: 180 euros.", acl={"groups": [finance["id"]]}
    )
    route = route_of(tenant)
    alice = principal(
        route, user_id=uuid.UUID(reader["id"]), groups=frozenset({uuid.UUID(finance["id"])})
    )
    bob = principal(route, user_id=uuid.UUID(outsider["id"]))
    cache = Cache(runtime)
    assert await cache.put(alice, QUESTION, doc["document_id"]) is not None

    exact = await cache.get(alice, "what is the hotel limit per night in paris")
    assert exact.outcome == "exact" and exact.hit and exact.hit.answer == ANSWER
    paraphrase = await cache.get(alice, "What's the hotel limit per night in Paris?")
    assert paraphrase.outcome == "semantic"
    for near_miss in (
        "What is the hotel limit per night in Paris for 3 nights?",
        "What is not the hotel limit per night in Paris?",
        "What is the hotel limit per night in Paris for contractors?",
    ):
        missed = await cache.get(alice, near_miss)
        assert missed.outcome == "miss" and missed.hit is None, near_miss
    assert (await cache.get(alice, QUESTION, {**SCOPE, "top_k": 3})).outcome == "miss"

    # Bob may not read the cited document: the very same question is a miss, no answer in it.
    refused = await cache.get(bob, QUESTION)
    assert refused.hit is None and refused.rejected == {"acl": 1}


async def test_acl_change_and_delete_drop_cached_answers(api: Api, runtime: Runtime) -> None:
    tenant = await api.new_tenant()
    reader, _ = await member(api, tenant)
    doc = await add(
        api, tenant, "Travel", "# Hotels\n\nParis: 180 euros.", acl={"visibility": "tenant"}
    )
    alice = principal(route_of(tenant), user_id=uuid.UUID(reader["id"]))
    cache = Cache(runtime)
    await cache.put(alice, QUESTION, doc["document_id"])
    assert (await cache.get(alice, QUESTION)).outcome == "exact"

    changed = await api.client.patch(
        f"/v1/documents/{doc['document_id']}/acl",
        json={"visibility": "tenant", "classification": 0},
        headers=tenant.admin,
    )
    assert changed.status_code == 200, changed.text
    gone = await cache.get(alice, QUESTION)
    assert gone.outcome == "miss" and gone.candidates == 0  # dropped, not merely refused

    await cache.put(alice, QUESTION, doc["document_id"])
    deleted = await api.client.delete(f"/v1/documents/{doc['document_id']}", headers=tenant.admin)
    assert deleted.status_code == 204
    assert (await cache.get(alice, QUESTION)).candidates == 0


async def test_another_tenant_never_hits_and_erasure_and_expiry_remove_entries(
    api: Api, runtime: Runtime
) -> None:
    first, second = await api.new_tenant(), await api.new_tenant()
    docs = {}
    users = {}
    for tenant in (first, second):
        user, _ = await member(api, tenant)
        users[tenant.id] = principal(route_of(tenant), user_id=uuid.UUID(user["id"]))
        docs[tenant.id] = await add(
            api, tenant, "Travel", "# Hotels\n\nParis: 180 euros.", acl={"visibility": "tenant"}
        )
    cache = Cache(runtime)
    await cache.put(users[first.id], QUESTION, docs[first.id]["document_id"])
    other = await cache.get(users[second.id], QUESTION)
    assert other.outcome == "miss" and other.candidates == 0

    alice = users[first.id]
    async with cache.open(alice) as opened:
        assert await opened.erase_subject(alice.user_id) == 1  # type: ignore[arg-type]
    assert (await cache.get(alice, QUESTION)).candidates == 0

    expiring = Cache(runtime, CachePolicy(ttl_seconds=0))
    await expiring.put(alice, QUESTION, docs[first.id]["document_id"])
    assert (await expiring.get(alice, QUESTION)).outcome == "miss"
    async with expiring.open(alice) as opened:
        assert await opened.purge_expired() == 1
