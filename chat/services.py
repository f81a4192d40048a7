"""The chat service: the entry point of one grounded answer, JSON or streamed.

The answer's path, stage by stage, is ``chat.pipeline`` (docs/ARCHITECTURE.md, "The path of a
chat request"); the tenant's chat policy is ``chat.policy``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chat import pipeline
from chat.judge import AnswerJudge
from chat.policy import ChatPolicyService
from chat.schemas import ChatPolicyBody, ChatRequest, ChatResponse
from chat.stages.deliver import ChatEvent
from chat.turn import ChatDeps
from dlp.services import DlpEngine
from gateway.services import GatewayService
from kernel.epochs import EpochCache
from kernel.tenancy import TenantContext
from keys.services import Keyring
from residency.registry import RegionRegistry
from retrieval.index import KnowledgeIndex

__all__ = ["ChatEvent", "ChatPolicyService", "ChatService"]


class ChatService:
    """Chat for one principal of one tenant."""

    def __init__(
        self,
        ctx: TenantContext,
        *,
        registry: RegionRegistry,
        keyring: Keyring,
        knowledge: KnowledgeIndex,
        gateway: GatewayService,
        dlp_engine: DlpEngine,
        pepper: str,
        request_id: str | None,
        judge: AnswerJudge | None = None,
        raw_debug: bool = False,
        policies: EpochCache[ChatPolicyBody] | None = None,
    ) -> None:
        """``policies``: the process's chat policies, kept under each tenant's epoch."""
        self.deps = ChatDeps(
            ctx=ctx,
            registry=registry,
            keyring=keyring,
            knowledge=knowledge,
            gateway=gateway,
            dlp_engine=dlp_engine,
            secret=pepper.encode(),
            request_id=request_id,
            judge=judge,
            raw_debug=raw_debug,
            policies=policies if policies is not None else EpochCache(),
        )

    @property
    def registry(self) -> RegionRegistry:
        """The deployment's region registry (the model names it serves, for the routes)."""
        return self.deps.registry

    async def answer(
        self, request: ChatRequest, *, history: list[dict[str, str]] | None = None
    ) -> ChatResponse:
        """``history``: earlier turns given by the caller (the OpenAI-compatible endpoint)
        instead of a stored session's."""
        return await pipeline.answer(self.deps, request, history)

    async def stream(
        self, request: ChatRequest, *, history: list[dict[str, str]] | None = None
    ) -> AsyncIterator[ChatEvent]:
        """The answer as events: ``meta``, ``token``..., ``citation``..., ``done`` (or
        ``error``). Everything up to the model's first token — DLP, cache, retrieval, routing,
        admission — happens before this returns, so its failures are ordinary problem responses.

        Outbound DLP must see a sentence to judge it (a name is only a name in context), and
        the answer gate must see what it cites, so the model's tokens are released sentence by
        sentence, each after its scan and its check.
        """
        return await pipeline.stream(self.deps, request, history)
