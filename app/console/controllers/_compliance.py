"""Compliance pages: the audit log (filter, page, verify the chain, export) and subject-access
requests (start, follow, download the export and the signed report)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.console import forms
from app.console.adapters import ApiProblem
from app.console.controllers._admin import _form
from app.console.controllers._base import AUDITORS, OFFICER, USER_DEPENDENCY, page, refusal, url
from app.console.session import ConsoleUser

PAGE_SIZE = 50
Filter = Annotated[str | None, QueryParameter(max_length=64)]
TimeFilter = Annotated[str | None, QueryParameter(max_length=40)]
Cursor = Annotated[int, QueryParameter(ge=0, le=2**53)]
# Until a request is done, its page asks console.js to refresh it.
SAR_RUNNING = {"queued", "running"}


class ConsoleAuditController(Controller):
    path = "/{tenant:str}/audit"
    dependencies = USER_DEPENDENCY

    @get("/", summary="Audit events, filtered and paged; export links")
    async def audit_page(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[ConsoleUser],
        action: Filter = None,
        actor: Filter = None,
        since: TimeFilter = None,
        until: TimeFilter = None,
        cursor: Cursor = 0,
    ) -> Template:
        user.require(*AUDITORS)
        filters = {"action": action, "actor": actor, "since": since, "until": until}
        error = None
        try:
            events = await user.api.get(
                "/v1/audit/events", **filters, cursor=cursor, limit=PAGE_SIZE
            )
        except ApiProblem as exc:
            if exc.status != 400 and exc.status != 422:
                raise
            error, events = refusal(exc)[0], {"items": [], "next_cursor": None}
        for event in events["items"]:
            event["detail_json"] = json.dumps(event["detail"], sort_keys=True)
        query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
        return page(
            user,
            "audit",
            "audit.html",
            {
                "events": events["items"],
                "next_cursor": events["next_cursor"],
                "filters": filters,
                "query": query,
                "error": error,
            },
            status_code=422 if error else 200,
            request=request,
        )

    @get("/verify", summary="Recompute the hash chain and show the result")
    async def verify(self, user: NamedDependency[ConsoleUser]) -> Template:
        user.require(*AUDITORS)
        result = await user.api.get("/v1/audit/verify")
        checkpoint = await user.api.get("/v1/audit/checkpoint") if result["ok"] else None
        return page(
            user, "audit", "audit_verify.html", {"result": result, "checkpoint": checkpoint}
        )


class ConsoleSarController(Controller):
    path = "/{tenant:str}/sar"
    dependencies = USER_DEPENDENCY

    async def _recent(self, user: ConsoleUser) -> list[dict[str, Any]]:
        """Requests made in this tenant, from their audit events (the API has no list)."""
        events = await user.api.get("/v1/audit/events", action="sar.requested", limit=500)
        return list(reversed(events["items"]))[:50]

    @get("/", summary="Start a subject-access request; recent requests")
    async def sar_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*OFFICER)
        context = {"recent": await self._recent(user)}
        return page(user, "sar", "sar.html", context, request=request)

    @post("/", summary="Start a subject-access request", status_code=303)
    async def start(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        user.require(*OFFICER)
        form, _ = await _form(request)
        try:
            created = await user.api.post("/v1/sar", forms.sar(form))
        except (ApiProblem, forms.FormError) as exc:
            detail, status = refusal(exc)
            context = {"recent": await self._recent(user), "error": detail}
            return page(user, "sar", "sar.html", context, status_code=status)
        return Redirect(url(user, "sar", str(created["id"])), status_code=303)

    @get("/{request_id:uuid}", summary="Follow a request; its export and signed report")
    async def sar_status(
        self, user: NamedDependency[ConsoleUser], request_id: FromPath[uuid.UUID]
    ) -> Template:
        user.require(*OFFICER)
        sar = await user.api.get(f"/v1/sar/{request_id}")
        return page(
            user,
            "sar",
            "sar_request.html",
            {
                "sar": sar,
                "running": sar["status"] in SAR_RUNNING,
                "export_url": f"/v1/sar/{request_id}/export",
                "report_url": url(user, "sar", str(request_id), "report.json"),
            },
        )

    @get("/{request_id:uuid}/report.json", summary="The signed report, as a file")
    async def report(
        self, user: NamedDependency[ConsoleUser], request_id: FromPath[uuid.UUID]
    ) -> Response[bytes]:
        user.require(*OFFICER)
        sar = await user.api.get(f"/v1/sar/{request_id}")
        body = {"report": sar["report"], "signature": sar["signature"]}
        return Response(
            json.dumps(body, indent=2, sort_keys=True).encode(),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="sar-{request_id}-report.json"'},
        )
