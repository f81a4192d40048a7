"""Documents: upload (with progress, through console.js), ingestion status, ACL editor, delete."""

from __future__ import annotations

import json
import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.console import forms
from app.console.adapters import ApiProblem
from app.console.controllers._admin import _form
from app.console.controllers._base import ADMIN, USER_DEPENDENCY, done, page, refusal
from app.console.session import ConsoleUser

# Until every document is ready (or failed), the list page asks console.js to refresh it.
PENDING = {"pending", "queued", "running", "processing"}


class ConsoleDocumentController(Controller):
    path = "/{tenant:str}/documents"
    dependencies = USER_DEPENDENCY

    async def _list(self, user: ConsoleUser) -> dict[str, Any]:
        documents = (await user.api.get("/v1/documents", limit=500))["items"]
        return {
            "documents": documents,
            "pending": any(d["status"] in PENDING for d in documents),
        }

    @get("/", summary="Documents with their ingestion status; upload")
    async def documents_page(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template:
        user.require(*ADMIN)
        return page(user, "documents", "documents.html", await self._list(user), request=request)

    @post("/", summary="Upload a document (multipart form)", status_code=303)
    async def upload(
        self, request: Request[Any, Any, Any], user: NamedDependency[ConsoleUser]
    ) -> Template | Redirect:
        user.require(*ADMIN)
        form, _ = await _form(request)
        upload = form.get("file")
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise forms.FormError("Choose a file to upload.")
            acl = {"visibility": forms.text(form, "visibility") or "restricted"}
            await user.api.call(
                "POST",
                "/v1/documents/upload",
                files={
                    "file": (
                        upload.filename,
                        await upload.read(),
                        upload.content_type or "application/octet-stream",
                    )
                },
                data={"title": forms.text(form, "title"), "acl": json.dumps(acl)},
            )
        except (ApiProblem, forms.FormError) as exc:
            detail, status = refusal(exc)
            context = {**await self._list(user), "error": detail}
            return page(user, "documents", "documents.html", context, status_code=status)
        return done(user, "documents", message="uploaded")

    async def _detail(self, user: ConsoleUser, document_id: FromPath[uuid.UUID]) -> dict[str, Any]:
        document = await user.api.get(f"/v1/documents/{document_id}")
        groups = (await user.api.get("/v1/admin/groups", limit=500))["items"]
        users = (await user.api.get("/v1/admin/users", limit=500))["items"]
        acl = document.get("acl") or {}
        return {
            "document": document,
            "groups": groups,
            "people": users,
            "acl": acl,
            "acl_attributes": "\n".join(
                f"{k}={','.join(v)}" for k, v in sorted((acl.get("attributes") or {}).items())
            ),
        }

    @get("/{document_id:uuid}", summary="A document, its status and its ACL editor")
    async def document_page(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[ConsoleUser],
        document_id: FromPath[uuid.UUID],
    ) -> Template:
        user.require(*ADMIN)
        context = await self._detail(user, document_id)
        return page(user, "documents", "document.html", context, request=request)

    @post("/{document_id:uuid}/acl", summary="Save the document's ACL", status_code=303)
    async def save_acl(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[ConsoleUser],
        document_id: FromPath[uuid.UUID],
    ) -> Template | Redirect:
        user.require(*ADMIN)
        form, multi = await _form(request)
        try:
            await user.api.patch(f"/v1/documents/{document_id}/acl", forms.acl(form, multi))
        except (ApiProblem, forms.FormError) as exc:
            if isinstance(exc, ApiProblem) and exc.status == 404:
                raise
            detail, status = refusal(exc)
            context = {**await self._detail(user, document_id), "error": detail}
            return page(user, "documents", "document.html", context, status_code=status)
        try:
            await user.api.get(f"/v1/documents/{document_id}")
        except ApiProblem as exc:
            if exc.status != 404:
                raise
            # Admins read documents by the same ACL as everyone: this one is out of their sight.
            return done(user, "documents", message="acl_hidden")
        return done(user, "documents", str(document_id), message="acl")

    @post("/{document_id:uuid}/delete", summary="Delete the document", status_code=303)
    async def delete_document(
        self, user: NamedDependency[ConsoleUser], document_id: FromPath[uuid.UUID]
    ) -> Redirect:
        user.require(*ADMIN)
        await user.api.delete(f"/v1/documents/{document_id}")
        return done(user, "documents", message="deleted")
