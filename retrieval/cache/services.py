"""The ACL-aware semantic cache: an exact layer and a semantic layer, per tenant.

Lookup, in order, each step failing closed to a miss:

1. exact layer — an HMAC of the canonical question and the request's scope (answer mode, top_k,
   filters) within the tenant;
2. semantic layer — the question's embedding against this tenant's cached questions in the
   region's vector store, cosine ≥ the tenant's threshold, then the near-miss verification of
   ``retrieval.cache.guard`` on the two questions;
3. for the candidate: not expired, every document it cites still exists at the cited version,
   and the asker may read each of them *now* (the same policy as the vector filter). A hit that
   fails here is a miss with no trace of the cached answer.

Writes: an answer is cached only when it cites sources (an answer that found nothing depends on
what the asker could not see). Document update, ACL change and deletion drop the entries citing
it; entries expire after the TTL; a subject's entries are erasable. Counters per tenant feed the
hit-ratio metric.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import utcnow
from kernel.observability import tenant_label
from kernel.tenancy import TenantContext
from keys.services import TenantKeys
from retrieval.acl import may_read
from retrieval.cache.guard import canonical, same_question
from retrieval.cache.index import QuestionIndex
from retrieval.cache.invalidation import drop_entries
from retrieval.models import CacheEntry, Document
from retrieval.repositories import CacheRepository, DocumentRepository
from retrieval.services import document_acl

# Cosine a cached question needs before the guard (``retrieval.cache.guard``) is asked: from
# 0.70 to 0.95 the guard's hits were all right on the public and own pair sets of
# ``bench/cache.py``, and recall fell as the threshold rose (typos cost MiniLM cosine); 0.80 is
# also the lowest a tenant may set (docs/PERFORMANCE.md).
CACHE_THRESHOLD = 0.80
QUESTION_KIND = "cache-question"
ANSWER_KIND = "cache-answer"
CANDIDATES = 5

CACHE_LOOKUPS = Counter(
    "bulwark_cache_lookups_total",
    "Semantic-cache lookups by outcome (exact, semantic, miss).",
    ["tenant", "outcome"],
)

Outcome = Literal["exact", "semantic", "miss"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    enabled: bool = True
    threshold: float = CACHE_THRESHOLD
    ttl_seconds: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class CacheHit:
    entry_id: uuid.UUID
    layer: Literal["exact", "semantic"]
    score: float
    answer: dict[str, Any]


@dataclass(slots=True)
class CacheLookup:
    """What a lookup decided, for the response and the trace (no text)."""

    hit: CacheHit | None = None
    candidates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return self.hit.layer if self.hit else "miss"


class SemanticCache:
    """One tenant's cache, for one request (a regional session, the tenant's keys)."""

    def __init__(
        self,
        ctx: TenantContext,
        session: AsyncSession,
        keys: TenantKeys,
        index: QuestionIndex,
        *,
        pepper: str | bytes,
        policy: CachePolicy,
    ) -> None:
        self.ctx = ctx
        self.keys = keys
        self.index = index
        self.policy = policy
        self.entries = CacheRepository(session, ctx)
        self.documents = DocumentRepository(session, ctx)
        self._pepper = pepper.encode() if isinstance(pepper, str) else pepper
        self._label = tenant_label(ctx.tenant_id)

    # --- keys --------------------------------------------------------------------------------

    def _key(self, purpose: str, text: str) -> str:
        message = f"{self.ctx.tenant_id}\x00{purpose}\x00{text}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    @staticmethod
    def scope_text(scope: Mapping[str, Any]) -> str:
        return json.dumps(scope, sort_keys=True, separators=(",", ":"))

    # --- lookup ------------------------------------------------------------------------------

    async def lookup(
        self, question: str, vector: Sequence[float], scope: Mapping[str, Any]
    ) -> CacheLookup:
        result = CacheLookup()
        if not self.policy.enabled:
            return result
        now = utcnow()
        scope_text = self.scope_text(scope)
        exact = await self.entries.by_exact_key(
            self._key("exact", f"{canonical(question)}\x00{scope_text}"), now
        )
        if exact is not None:
            result.candidates += 1
            answer = await self._servable(exact, result)
            if answer is not None:
                result.hit = CacheHit(exact.id, "exact", 1.0, answer)
                exact.hits += 1
        if result.hit is None:
            scope_key = self._key("scope", scope_text)
            near = await self.index.nearest(
                self.ctx, vector, limit=CANDIDATES, min_score=self.policy.threshold
            )
            scores = {uuid.UUID(entry_id): score for entry_id, score in near}
            rows = {row.id: row for row in await self.entries.live(list(scores), now)}
            for entry_id, score in sorted(scores.items(), key=lambda kv: -kv[1]):
                row = rows.get(entry_id)
                if row is None or (exact is not None and row.id == exact.id):
                    continue
                result.candidates += 1
                if row.scope_key != scope_key:
                    result.rejected["scope"] = result.rejected.get("scope", 0) + 1
                    continue
                cached_question = (
                    await self.keys.open(QUESTION_KIND, str(row.id), row.sealed_question)
                ).decode()
                if not same_question(cached_question, question):
                    result.rejected["near_miss"] = result.rejected.get("near_miss", 0) + 1
                    continue
                answer = await self._servable(row, result)
                if answer is not None:
                    result.hit = CacheHit(row.id, "semantic", score, answer)
                    row.hits += 1
                    break
        CACHE_LOOKUPS.labels(self._label, result.outcome).inc()
        return result

    async def _servable(self, row: CacheEntry, result: CacheLookup) -> dict[str, Any] | None:
        """The entry's answer if this asker may be served it now, else None (and why)."""
        sources = await self.entries.sources(row.id)
        documents = {
            d.id: d for d in await self.documents.get_many([s.document_id for s in sources])
        }
        for source in sources:
            document = documents.get(source.document_id)
            if document is None or document.version != source.version:
                result.rejected["stale"] = result.rejected.get("stale", 0) + 1
                return None
            if not self._readable(document):
                result.rejected["acl"] = result.rejected.get("acl", 0) + 1
                return None
        if not sources:
            return None
        opened = await self.keys.open(ANSWER_KIND, str(row.id), row.sealed_answer)
        answer: dict[str, Any] = json.loads(opened)
        return answer

    def _readable(self, document: Document) -> bool:
        return document.status == "ready" and may_read(
            self.ctx, document_acl(document), document.tenant_id
        )

    # --- writes ------------------------------------------------------------------------------

    async def store(
        self,
        question: str,
        vector: Sequence[float],
        scope: Mapping[str, Any],
        answer: Mapping[str, Any],
        cited_versions: Mapping[uuid.UUID, int],
    ) -> uuid.UUID | None:
        """Cache an answer that cites ``cited_versions`` (document id → version)."""
        if not self.policy.enabled or not cited_versions:
            return None
        entry_id = uuid.uuid4()
        scope_text = self.scope_text(scope)
        row = CacheEntry(
            id=entry_id,
            exact_key=self._key("exact", f"{canonical(question)}\x00{scope_text}"),
            scope_key=self._key("scope", scope_text),
            asker_id=self.ctx.user_id,
            sealed_question=await self.keys.seal(QUESTION_KIND, str(entry_id), question.encode()),
            sealed_answer=await self.keys.seal(
                ANSWER_KIND, str(entry_id), json.dumps(answer).encode()
            ),
            expires_at=utcnow() + timedelta(seconds=self.policy.ttl_seconds),
            hits=0,
        )
        await self.entries.add(row)
        await self.entries.add_sources(entry_id, dict(cited_versions))
        await self.index.put(self.ctx, str(entry_id), vector)
        return entry_id

    async def erase_subject(self, user_id: uuid.UUID) -> int:
        """Drop every entry created from this person's questions (subject-access erasure)."""
        return await self._drop(await self.entries.ids_where(CacheEntry.asker_id == user_id))

    async def purge_expired(self) -> int:
        return await self._drop(await self.entries.ids_where(CacheEntry.expires_at <= utcnow()))

    async def _drop(self, entry_ids: Sequence[uuid.UUID]) -> int:
        return await drop_entries(self.entries.session, self.ctx, self.index, entry_ids)
