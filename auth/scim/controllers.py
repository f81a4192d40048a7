"""SCIM 2.0 (RFC 7643/7644) at ``/scim/v2/{tenant}``, and the tenant admin's SCIM token.

The SCIM routes are excluded from the bearer middleware: they authenticate the tenant's SCIM
token themselves (``auth.scim.deps``), answer ``application/scim+json`` and render every error as
a SCIM ``Error``. They are left out of the OpenAPI document: their contract is RFC 7644 and
their own discovery endpoints (``/ServiceProviderConfig``, ``/ResourceTypes``, ``/Schemas``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from scim2_models import Context, ResourceType, Schema

from auth.middleware import EXCLUDE_FROM_AUTH
from auth.scim.deps import SCIM_DEPENDENCIES, scim_base_url
from auth.scim.errors import ScimResourceNotFound
from auth.scim.http import SCIM_EXCEPTION_HANDLERS, scim_response
from auth.scim.mapping import etag
from auth.scim.resources import (
    AnyScimResource,
    ScimGroup,
    ScimUser,
    dump,
    list_response,
    parse_response_parameters,
    parse_search,
    resource_types,
    schemas,
    service_provider_config,
)
from auth.scim.schemas import ScimTokenIssued
from auth.scim.services import (
    ScimGroupService,
    ScimPage,
    ScimSearchService,
    ScimTokenService,
    ScimUserService,
    not_modified,
)
from kernel.api import SECURED, problem_responses
from kernel.guards import requires_role
from kernel.settings import Settings
from kernel.tenancy import Role, TenantContext

SCIM_BASE = "/scim/v2/{tenant:str}"

# Query parameters are read as strings and validated by scim2-models, so that a bad value is
# a SCIM error (invalidValue, invalidFilter) like any other.
Filter = Annotated[str | None, QueryParameter(name="filter")]
StartIndex = Annotated[str | None, QueryParameter(name="startIndex")]
Count = Annotated[str | None, QueryParameter(name="count")]
SortBy = Annotated[str | None, QueryParameter(name="sortBy")]
SortOrder = Annotated[str | None, QueryParameter(name="sortOrder")]
Attributes = Annotated[str | None, QueryParameter(name="attributes")]
ExcludedAttributes = Annotated[str | None, QueryParameter(name="excludedAttributes")]
IfMatch = Annotated[str | None, HeaderParameter(name="if-match")]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="if-none-match")]
Body = JSONBody[dict[str, Any]]


def _search_parameters(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


def _resource_response(
    resource: Any,
    context: Context,
    parameters: Any = None,
    *,
    status_code: int = 200,
) -> Response[bytes]:
    headers = {"ETag": resource.meta.version}
    if status_code == 201:
        headers["Location"] = resource.meta.location
    return scim_response(
        dump(resource, context, parameters), status_code=status_code, headers=headers
    )


def _page_response(model: Any, page: ScimPage, parameters: Any) -> Response[bytes]:
    return scim_response(
        list_response(
            model,
            page.resources,
            total=page.total,
            start_index=page.start_index,
            parameters=parameters,
        )
    )


class _ScimController(Controller):
    opt = {EXCLUDE_FROM_AUTH: True}
    include_in_schema = False
    exception_handlers = SCIM_EXCEPTION_HANDLERS
    dependencies = SCIM_DEPENDENCIES
    tags = ["scim"]


class ScimDiscoveryController(_ScimController):
    """Discovery (RFC 7644 §4). ``ctx`` is what authenticates these: the SCIM token."""

    path = SCIM_BASE

    @get("/ServiceProviderConfig")
    async def service_provider_config(
        self, ctx: NamedDependency[TenantContext], settings: NamedDependency[Settings]
    ) -> Response[bytes]:
        config = service_provider_config(scim_base_url(settings, ctx))
        return scim_response(dump(config, Context.RESOURCE_QUERY_RESPONSE))

    @get("/ResourceTypes")
    async def list_resource_types(
        self, ctx: NamedDependency[TenantContext], settings: NamedDependency[Settings]
    ) -> Response[bytes]:
        items = resource_types(scim_base_url(settings, ctx))
        return scim_response(
            list_response(ResourceType, items, total=len(items), start_index=1, parameters=None)
        )

    @get("/ResourceTypes/{resource_type_id:str}")
    async def get_resource_type(
        self,
        ctx: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        resource_type_id: FromPath[str],
    ) -> Response[bytes]:
        for item in resource_types(scim_base_url(settings, ctx)):
            if item.id == resource_type_id:
                return scim_response(dump(item, Context.RESOURCE_QUERY_RESPONSE))
        raise ScimResourceNotFound("resource type")

    @get("/Schemas")
    async def list_schemas(
        self, ctx: NamedDependency[TenantContext], settings: NamedDependency[Settings]
    ) -> Response[bytes]:
        items = schemas(scim_base_url(settings, ctx))
        return scim_response(
            list_response(Schema, items, total=len(items), start_index=1, parameters=None)
        )

    @get("/Schemas/{schema_id:str}")
    async def get_schema(
        self,
        ctx: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        schema_id: FromPath[str],
    ) -> Response[bytes]:
        for item in schemas(scim_base_url(settings, ctx)):
            if item.id == schema_id:
                return scim_response(dump(item, Context.RESOURCE_QUERY_RESPONSE))
        raise ScimResourceNotFound("schema")


class ScimUserController(_ScimController):
    path = f"{SCIM_BASE}/Users"

    @post("/", status_code=201)
    async def create_user(
        self,
        scim_users: NamedDependency[ScimUserService],
        data: Body,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimUser, attributes, excluded_attributes)
        user = await scim_users.create(data)
        return _resource_response(
            user, Context.RESOURCE_CREATION_RESPONSE, parameters, status_code=201
        )

    @get("/")
    async def list_users(
        self,
        scim_users: NamedDependency[ScimUserService],
        scim_filter: Filter = None,
        start_index: StartIndex = None,
        count: Count = None,
        sort_by: SortBy = None,
        sort_order: SortOrder = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        request = parse_search(
            ScimUser,
            _search_parameters(
                filter=scim_filter,
                startIndex=start_index,
                count=count,
                sortBy=sort_by,
                sortOrder=sort_order,
                attributes=attributes,
                excludedAttributes=excluded_attributes,
            ),
        )
        return _page_response(ScimUser, await scim_users.search(request, request), request)

    @post("/.search", status_code=200)
    async def search_users(
        self, scim_users: NamedDependency[ScimUserService], data: Body
    ) -> Response[bytes]:
        request = parse_search(ScimUser, data)
        return _page_response(ScimUser, await scim_users.search(request, request), request)

    @get("/{user_id:str}")
    async def get_user(
        self,
        scim_users: NamedDependency[ScimUserService],
        user_id: FromPath[str],
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimUser, attributes, excluded_attributes)
        row, user = await scim_users.read(user_id)
        if not_modified(if_none_match, row.version):
            return Response(content=b"", status_code=304, headers={"ETag": etag(row.version)})
        return _resource_response(user, Context.RESOURCE_QUERY_RESPONSE, parameters)

    @put("/{user_id:str}")
    async def replace_user(
        self,
        scim_users: NamedDependency[ScimUserService],
        user_id: FromPath[str],
        data: Body,
        if_match: IfMatch = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimUser, attributes, excluded_attributes)
        user = await scim_users.replace(user_id, data, if_match)
        return _resource_response(user, Context.RESOURCE_REPLACEMENT_RESPONSE, parameters)

    @patch("/{user_id:str}")
    async def patch_user(
        self,
        scim_users: NamedDependency[ScimUserService],
        user_id: FromPath[str],
        data: Body,
        if_match: IfMatch = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimUser, attributes, excluded_attributes)
        user = await scim_users.patch(user_id, data, if_match)
        return _resource_response(user, Context.RESOURCE_PATCH_RESPONSE, parameters)

    @delete("/{user_id:str}", status_code=204)
    async def delete_user(
        self,
        scim_users: NamedDependency[ScimUserService],
        user_id: FromPath[str],
        if_match: IfMatch = None,
    ) -> None:
        await scim_users.delete(user_id, if_match)


class ScimGroupController(_ScimController):
    path = f"{SCIM_BASE}/Groups"

    @post("/", status_code=201)
    async def create_group(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        data: Body,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimGroup, attributes, excluded_attributes)
        group = await scim_groups.create(data)
        return _resource_response(
            group, Context.RESOURCE_CREATION_RESPONSE, parameters, status_code=201
        )

    @get("/")
    async def list_groups(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        scim_filter: Filter = None,
        start_index: StartIndex = None,
        count: Count = None,
        sort_by: SortBy = None,
        sort_order: SortOrder = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        request = parse_search(
            ScimGroup,
            _search_parameters(
                filter=scim_filter,
                startIndex=start_index,
                count=count,
                sortBy=sort_by,
                sortOrder=sort_order,
                attributes=attributes,
                excludedAttributes=excluded_attributes,
            ),
        )
        return _page_response(ScimGroup, await scim_groups.search(request, request), request)

    @post("/.search", status_code=200)
    async def search_groups(
        self, scim_groups: NamedDependency[ScimGroupService], data: Body
    ) -> Response[bytes]:
        request = parse_search(ScimGroup, data)
        return _page_response(ScimGroup, await scim_groups.search(request, request), request)

    @get("/{group_id:str}")
    async def get_group(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        group_id: FromPath[str],
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimGroup, attributes, excluded_attributes)
        row, group = await scim_groups.read(group_id, parameters)
        if not_modified(if_none_match, row.version):
            return Response(content=b"", status_code=304, headers={"ETag": etag(row.version)})
        return _resource_response(group, Context.RESOURCE_QUERY_RESPONSE, parameters)

    @put("/{group_id:str}")
    async def replace_group(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        group_id: FromPath[str],
        data: Body,
        if_match: IfMatch = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimGroup, attributes, excluded_attributes)
        group = await scim_groups.replace(group_id, data, if_match)
        return _resource_response(group, Context.RESOURCE_REPLACEMENT_RESPONSE, parameters)

    @patch("/{group_id:str}")
    async def patch_group(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        group_id: FromPath[str],
        data: Body,
        if_match: IfMatch = None,
        attributes: Attributes = None,
        excluded_attributes: ExcludedAttributes = None,
    ) -> Response[bytes]:
        parameters = parse_response_parameters(ScimGroup, attributes, excluded_attributes)
        group = await scim_groups.patch(group_id, data, if_match)
        return _resource_response(group, Context.RESOURCE_PATCH_RESPONSE, parameters)

    @delete("/{group_id:str}", status_code=204)
    async def delete_group(
        self,
        scim_groups: NamedDependency[ScimGroupService],
        group_id: FromPath[str],
        if_match: IfMatch = None,
    ) -> None:
        await scim_groups.delete(group_id, if_match)


class ScimRootSearchController(_ScimController):
    path = SCIM_BASE

    @post("/.search", status_code=200)
    async def search_all(
        self, search: NamedDependency[ScimSearchService], data: Body
    ) -> Response[bytes]:
        request = parse_search(AnyScimResource, data)
        return _page_response(AnyScimResource, await search.search(request), request)


class AdminScimTokenController(Controller):
    path = "/v1/admin/scim-token"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]

    @post(
        "/",
        status_code=201,
        responses=problem_responses(),
        summary=(
            "Issue the tenant's SCIM token (shown only in this response); earlier SCIM tokens "
            "stop working. The IdP uses it on /scim/v2/{tenant-slug}."
        ),
    )
    async def issue_scim_token(
        self, scim_tokens: NamedDependency[ScimTokenService]
    ) -> ScimTokenIssued:
        issued = await scim_tokens.issue()
        return ScimTokenIssued(
            id=issued.row.id,
            token=issued.token,
            hint=issued.row.hint,
            created_at=issued.row.created_at,
        )
