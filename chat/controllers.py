"""Chat routes: grounded answers (JSON or SSE), sessions, the tenant's chat policy, and the
OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models`` with RAG on the last user message."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from audit.services import AuditLog
from chat.errors import NotAChatQuestion
from chat.schemas import (
    VISIBLE_CHARACTER,
    ChatCompletionWithSources,
    ChatMessageRead,
    ChatPolicyBody,
    ChatRequest,
    ChatResponse,
    ChatSessionList,
    ChatSessionRead,
    ChatTranscript,
    ModelList,
    ModelRead,
    RagChoice,
    RagCompletionRequest,
)
from chat.services import ChatEvent, ChatPolicyService, ChatService
from chat.sessions import ChatSessionService
from gateway.errors import UnknownModel
from gateway.fleet import TIERS, model_choices
from gateway.schemas import ChatMessageOut, CompletionUsage
from kernel.api import SECURED, Limit, Offset, problem_responses, sse_event
from kernel.guards import requires_role, requires_tenant
from kernel.tenancy import Role, TenantContext

_VISIBLE_CHARACTER = re.compile(VISIBLE_CHARACTER)


def provide_chat_policy(
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ChatPolicyService:
    return ChatPolicyService(db, ctx, audit)


async def _chat_events(events: AsyncIterator[ChatEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield sse_event(msgspec.to_builtins(event.payload), event.kind)


def _wants_stream(request: Request[Any, Any, Any]) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _check_model(chat: ChatService, model: str) -> None:
    """A model this deployment has nowhere is refused before anything else, whether or not
    the answer would have needed a model call (the document lists the names there are).

    (Read through the chat service's region registry, the deployment's: a dependency of their
    own would resolve beside ``ctx``, in a task group, on this hot path.)"""
    if model not in model_choices(chat.registry.planes()):
        raise UnknownModel(model)


class ChatController(Controller):
    path = "/v1/chat"
    tags = ["chat"]
    security = SECURED
    guards = [requires_tenant]
    # No request unit of work: the chat service opens short transactions of its own around the
    # model call, so no database transaction stays open while a model generates.

    @post(
        "/",
        status_code=200,
        responses=problem_responses(404, 422, 429, 503),
        summary="A grounded answer with citations (JSON, or SSE with Accept: text/event-stream)",
    )
    async def chat(
        self,
        request: Request[Any, Any, Any],
        chat: NamedDependency[ChatService],
        data: JSONBody[ChatRequest],
    ) -> Response[Any]:
        _check_model(chat, data.model)
        if _wants_stream(request):
            events = await chat.stream(data)
            return Stream(
                _chat_events(events),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return Response(content=await chat.answer(data))

    @post(
        "/completions",
        status_code=200,
        responses=problem_responses(404, 422, 429, 503),
        summary="OpenAI-compatible chat completion with RAG on the last user message",
    )
    async def completions(
        self,
        chat: NamedDependency[ChatService],
        data: JSONBody[RagCompletionRequest],
    ) -> Response[Any]:
        _check_model(chat, data.model)
        question, history = _last_user_message(data)
        chat_request = ChatRequest(message=question, model=data.model)
        created, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        if data.stream:
            events = await chat.stream(chat_request, history=history)
            return Stream(
                _openai_chunks(events, completion_id, created, data.model),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        answer = await chat.answer(chat_request, history=history)
        return Response(content=_completion(answer, completion_id, created, data.model))


def _last_user_message(data: RagCompletionRequest) -> tuple[str, list[dict[str, str]]]:
    """The last user message with visible text (what the OpenAPI document requires one of),
    and the conversation before it."""
    users = [
        i
        for i, m in enumerate(data.messages)
        if m.role == "user" and _VISIBLE_CHARACTER.search(m.content)
    ]
    if not users:
        raise NotAChatQuestion()
    last = users[-1]
    history = [
        {"role": m.role, "content": m.content}
        for m in data.messages[:last]
        if m.role in ("user", "assistant")
    ]
    return data.messages[last].content, history


def _completion(
    answer: ChatResponse, completion_id: str, created: int, model: str
) -> ChatCompletionWithSources:
    return ChatCompletionWithSources(
        id=completion_id,
        created=created,
        model=answer.model.tier or model,
        choices=[
            RagChoice(
                index=0,
                message=ChatMessageOut(role="assistant", content=answer.answer),
                finish_reason="stop",
            )
        ],
        usage=CompletionUsage(
            prompt_tokens=answer.usage.input_tokens,
            completion_tokens=answer.usage.output_tokens,
            total_tokens=answer.usage.input_tokens + answer.usage.output_tokens,
        ),
        bulwark=answer,
    )


async def _openai_chunks(
    events: AsyncIterator[ChatEvent], completion_id: str, created: int, model: str
) -> AsyncIterator[bytes]:
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    first = True
    async for event in events:
        if event.kind == "token":
            delta: dict[str, str] = {"content": event.payload["text"]}
            if first:
                delta["role"] = "assistant"
                first = False
            chunk = {**base, "model": model, "choices": [{"index": 0, "delta": delta}]}
            yield sse_event(chunk)
        elif event.kind == "done":
            summary = msgspec.to_builtins(event.payload)
            chunk = {
                **base,
                "model": summary["model"]["tier"] or model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "bulwark": summary,
            }
            yield sse_event(chunk)
        elif event.kind == "error":
            yield sse_event({"error": msgspec.to_builtins(event.payload)})
    yield b"data: [DONE]\n\n"


class ChatSessionController(Controller):
    path = "/v1/chat/sessions"
    tags = ["chat"]
    security = SECURED
    guards = [requires_tenant]

    @get("/", responses=problem_responses(), summary="Your chat sessions, most recent first")
    async def list_sessions(
        self,
        chat_sessions: NamedDependency[ChatSessionService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ChatSessionList:
        rows, total = await chat_sessions.page(limit=limit, offset=offset)
        return ChatSessionList(
            items=[_session_read(row, title) for row, title in rows], total=total
        )

    @get("/{session_id:uuid}", responses=problem_responses(404), summary="One of your sessions")
    async def get_session(
        self, chat_sessions: NamedDependency[ChatSessionService], session_id: FromPath[uuid.UUID]
    ) -> ChatTranscript:
        row = await chat_sessions.get(session_id)
        messages = await chat_sessions.transcript(row)
        return ChatTranscript(
            session=_session_read(row, await chat_sessions.title(row)),
            messages=[
                ChatMessageRead(
                    id=m.id,
                    role=m.role,
                    content=text,
                    citations=list(m.citations),
                    created_at=m.created_at,
                )
                for m, text in messages
            ],
        )

    @delete(
        "/{session_id:uuid}",
        status_code=204,
        responses=problem_responses(404),
        summary="Delete one of your sessions and its messages",
    )
    async def delete_session(
        self, chat_sessions: NamedDependency[ChatSessionService], session_id: FromPath[uuid.UUID]
    ) -> None:
        await chat_sessions.delete(session_id)


def _session_read(row: Any, title: str) -> ChatSessionRead:
    return ChatSessionRead(
        id=row.id,
        title=title,
        message_count=row.message_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["chat"]
    security = SECURED
    guards = [requires_tenant]

    @get(
        "/",
        responses=problem_responses(),
        summary="Models a chat completion may name (OpenAI-compatible)",
    )
    async def list_models(self) -> ModelList:
        return ModelList(
            data=[ModelRead(id=name, created=0, owned_by="bulwark") for name in ("auto", *TIERS)]
        )


class ChatPolicyController(Controller):
    path = "/v1/admin/chat"
    tags = ["chat", "admin"]
    security = SECURED
    guards = [requires_tenant, requires_role(Role.TENANT_ADMIN)]
    dependencies = {"policies": Provide(provide_chat_policy, sync_to_thread=False)}

    @get(
        "/",
        responses=problem_responses(),
        summary="The tenant's chat policy (answer mode, cache, revise loop, fan-out)",
    )
    async def get_policy(self, policies: NamedDependency[ChatPolicyService]) -> ChatPolicyBody:
        return await policies.current()

    @put("/", responses=problem_responses(422), summary="Replace the tenant's chat policy")
    async def put_policy(
        self,
        policies: NamedDependency[ChatPolicyService],
        data: JSONBody[ChatPolicyBody],
    ) -> ChatPolicyBody:
        return await policies.replace(data)
