"""The chat playground: ask as yourself, see the answer's citations, cache status, tier and cost."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Template

from app.console import forms
from app.console.adapters import ApiProblem
from app.console.controllers._admin import _form
from app.console.controllers._base import USER_DEPENDENCY, page, refusal
from app.console.session import ConsoleUser


class ConsolePlaygroundController(Controller):
    path = "/{tenant:str}/playground"
    dependencies = USER_DEPENDENCY

    @get("/", summary="Ask a question over the tenant's documents")
    async def playground(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        return page(user, "playground", "playground.html", {}, request=request)

    @post("/", summary="Ask (one POST /v1/chat as the signed-in person)", status_code=200)
    async def ask(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        form, _ = await _form(request)
        message = forms.text(form, "message")
        body: dict[str, Any] = {"message": message}
        session_id = forms.optional(form, "session_id")
        try:
            if session_id:
                body["session_id"] = str(uuid.UUID(session_id))
            if forms.text(form, "mode") in ("generative", "extractive"):
                body["mode"] = forms.text(form, "mode")
            answer = await user.api.post("/v1/chat", body)
        except ValueError:
            return page(
                user, "playground", "playground.html", {"error": "Bad session id."}, status_code=422
            )
        except ApiProblem as exc:
            detail, status = refusal(exc)
            context = {"error": detail, "message": message, "session_id": session_id}
            return page(user, "playground", "playground.html", context, status_code=status)
        return page(
            user,
            "playground",
            "playground.html",
            {"answer": answer, "question": message, "session_id": str(answer["session_id"])},
        )
