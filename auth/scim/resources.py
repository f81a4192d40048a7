"""The SCIM resources Bulwark serves, what it publishes about them, and how requests are read.

Users are the RFC 7643 core User with the EnterpriseUser extension, as scim2-models defines them.
Groups are the core Group, except that a member carries no ``display``: Bulwark keeps a
membership as the pair (group, user) only, so it could not return a display name a client sent
(RFC 7643 §8.7.1 lists ``value``, ``$ref`` and ``type`` only). Members are users; nested groups
are not supported.

Every request payload is validated here with scim2-models, in the SCIM context of its operation,
and a validation failure becomes a SCIM error (``invalidValue``, ``invalidSyntax``, ...).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError
from scim2_models import URN as SchemaURN
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    ListResponse,
    Meta,
    Mutability,
    Pagination,
    Patch,
    PatchOp,
    Reference,
    Required,
    Resource,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    ScimPolicy,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)

from auth.scim.errors import ScimInvalidSyntax, from_scim_exception, from_validation_error

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# The most resources one page returns (``count`` above it is capped), and the page size when a
# client gives no ``count``.
MAX_RESULTS = 200
DEFAULT_COUNT = 100


class GroupMember(ComplexAttribute):
    value: Annotated[str | None, Mutability.immutable, CaseExact.true] = None
    """Identifier (``id``) of the User that is a member of this Group."""

    # The resource type name, as scim2-models' own models write it (not the class).
    ref: Annotated[Reference["User"] | None, Mutability.immutable] = Field(  # type: ignore[type-arg]  # noqa: UP037
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the member User."""

    type: Annotated[str | None, Mutability.immutable] = Field(None, examples=["User"])
    """The type of the member: always 'User' (groups do not nest)."""


class Group(Resource[Any]):
    """Group"""

    __schema__ = SchemaURN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true] = None
    """A human-readable name for the Group. Unique in the tenant."""

    members: list[GroupMember] | None = None
    """The Users that are members of this Group."""


ScimUser = User[EnterpriseUser]
ScimGroup = Group
AnyScimResource = Union[ScimUser, ScimGroup]  # noqa: UP007 - a runtime type argument

PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[ResourceType.from_resource(ScimUser), ResourceType.from_resource(Group)],
)

# How much of what IdPs send is accepted (RFC 7644 read strictly otherwise): Microsoft Entra
# removes members by sending them as the value of a "remove", and replaces
# ``emails[type eq "work"].value`` on a user that has no work email yet, expecting it created.
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

_CONFIG = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=True),
    etag=ETag(supported=True),
    pagination=Pagination(
        cursor=False,
        index=True,
        default_pagination_method=Pagination.DefaultPaginationMethod.index,
        default_page_size=DEFAULT_COUNT,
        max_page_size=MAX_RESULTS,
    ),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Bearer token",
            description=(
                "The tenant's SCIM token (bsc_...), issued by a tenant admin with "
                "POST /v1/admin/scim-token, sent as 'Authorization: Bearer <token>'."
            ),
            primary=True,
        )
    ],
)


def service_provider_config(base_url: str) -> ServiceProviderConfig:
    config = _CONFIG.model_copy(deep=True)
    config.meta = Meta(
        resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"
    )
    return config


def schemas(base_url: str) -> list[Schema]:
    published = []
    for schema in PROVIDER.schemas:
        copied = schema.model_copy(deep=True)
        copied.meta = Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")
        published.append(copied)
    return published


def resource_types(base_url: str) -> list[ResourceType]:
    published = []
    for resource_type in PROVIDER.resource_types:
        copied = resource_type.model_copy(deep=True)
        copied.meta = Meta(
            resource_type="ResourceType", location=f"{base_url}/ResourceTypes/{resource_type.id}"
        )
        published.append(copied)
    return published


def _validated(model: Any, payload: Any, context: Context) -> Any:
    if not isinstance(payload, dict):
        raise ScimInvalidSyntax("The request body must be a JSON object.")
    try:
        return model.model_validate(copy.deepcopy(payload), scim_ctx=context, scim_policy=POLICY)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    except SCIMException as exc:
        raise from_scim_exception(exc) from None


def parse_resource(model: type[Resource[Any]], payload: Any, context: Context) -> Any:
    """A creation (POST) or replacement (PUT) body, validated as ``model``."""
    return _validated(model, payload, context)


def parse_patch(model: type[Resource[Any]], payload: Any) -> PatchOp[Any]:
    patch: PatchOp[Any] = _validated(
        PatchOp.__class_getitem__(model), payload, Context.RESOURCE_PATCH_REQUEST
    )
    return patch


def parse_search(model: Any, parameters: dict[str, Any]) -> SearchRequest[Any]:
    """Query parameters or a ``/.search`` body: filter, sort, paging, attribute selection.

    The filter is parsed (scim2-models' RFC 7644 grammar) and checked against ``model``: a
    syntax error or an attribute the resource type does not have is ``invalidFilter``.
    """
    request: SearchRequest[Any] = _validated(
        SearchRequest.__class_getitem__(model), parameters, Context.SEARCH_REQUEST
    )
    return request


def parse_response_parameters(
    model: Any, attributes: str | None, excluded_attributes: str | None
) -> ResponseParameters[Any]:
    parameters = {
        key: value
        for key, value in (
            ("attributes", attributes),
            ("excludedAttributes", excluded_attributes),
        )
        if value is not None
    }
    response_parameters: ResponseParameters[Any] = _validated(
        ResponseParameters.__class_getitem__(model), parameters, Context.DEFAULT
    )
    return response_parameters


def list_response(
    model: Any,
    resources: list[Any],
    *,
    total: int,
    start_index: int,
    parameters: ResponseParameters[Any] | None,
) -> dict[str, Any]:
    response = ListResponse.__class_getitem__(model)(
        total_results=total,
        start_index=start_index,
        items_per_page=len(resources),
        resources=resources,
    )
    dumped: dict[str, Any] = response.model_dump(
        scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters
    )
    return dumped


def dump(
    resource: Any, context: Context, parameters: ResponseParameters[Any] | None = None
) -> dict[str, Any]:
    dumped: dict[str, Any] = resource.model_dump(scim_ctx=context, response_parameters=parameters)
    return dumped
