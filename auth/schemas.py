from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from auth.context import Role

# Explicit code-point classes rather than \s / \S: Python's and ECMAScript's whitespace sets
# differ, and the OpenAPI document must promise exactly what the server enforces.
_ADDR = r"[^@\x00-\x20\x7f-\x9f]"
# Printable text: no control characters (PostgreSQL refuses NUL), at least one visible character.
VISIBLE = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f]*$"
Email = Annotated[
    str, msgspec.Meta(pattern=rf"^{_ADDR}{{1,64}}@{_ADDR}+\.{_ADDR}+$", max_length=320)
]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=VISIBLE)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=VISIBLE)]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    display_name: DisplayName
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: [Role.MEMBER]
    )


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    display_name: DisplayName | None = None
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=3)] | None = None
    # false deactivates: the user's sessions and API keys are revoked at once.
    active: bool | None = None


class UserRead(msgspec.Struct):
    id: uuid.UUID
    email: str
    display_name: str
    roles: list[Role]
    active: bool
    group_ids: list[uuid.UUID]
    created_at: datetime


class UserPage(msgspec.Struct):
    items: list[UserRead]
    next_offset: int | None


class GroupCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class GroupRead(msgspec.Struct):
    id: uuid.UUID
    name: str
    member_ids: list[uuid.UUID]
    created_at: datetime


class GroupPage(msgspec.Struct):
    items: list[GroupRead]
    next_offset: int | None


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID
    name: Name


class ApiKeyRead(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    hint: str
    created_at: datetime
    key: str = msgspec.field(name="key")


class ApiKeyPage(msgspec.Struct):
    items: list[ApiKeyRead]
    next_offset: int | None


class MeTenant(msgspec.Struct):
    id: uuid.UUID
    slug: str
    region: str


class MeUser(msgspec.Struct):
    id: uuid.UUID
    email: str
    display_name: str


class MeRead(msgspec.Struct):
    tenant: MeTenant
    user: MeUser
    roles: list[Role]
    group_ids: list[uuid.UUID]
    auth_method: str


class AdminBootstrap(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    display_name: DisplayName


class AdminBootstrapped(msgspec.Struct):
    user: UserRead
    api_key: ApiKeyCreated


IdpGroup = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=VISIBLE)]


class RoleMappingItem(msgspec.Struct, forbid_unknown_fields=True):
    idp_group: IdpGroup
    role: Role


class RoleMappings(msgspec.Struct, forbid_unknown_fields=True):
    default_role: Role
    mappings: Annotated[list[RoleMappingItem], msgspec.Meta(max_length=500)]


ClaimName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_:./-]{1,128}$")]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2048)]


class OidcClaimMapping(msgspec.Struct, forbid_unknown_fields=True):
    user_id: ClaimName = "sub"
    email: ClaimName = "email"
    name: ClaimName = "name"
    groups: ClaimName = "groups"
    given_name: ClaimName = "given_name"
    family_name: ClaimName = "family_name"


class OidcConfigWrite(msgspec.Struct, forbid_unknown_fields=True):
    client_id: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,255}$")]
    issuer: HttpUrl | None = None
    server_url: HttpUrl | None = None
    realm: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,255}$")] | None = None
    # Write-only: sealed with the tenant's keys; omit to keep the stored one.
    client_secret: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,512}$")] | None = None
    # Space-separated, as in the OIDC ``scope`` parameter.
    scope: Annotated[str, msgspec.Meta(pattern=r"^[!-~]+( [!-~]+)*$", max_length=512)] = (
        "openid email profile"
    )
    claims: OidcClaimMapping = msgspec.field(default_factory=OidcClaimMapping)
    audience: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,255}$")] | None = None
    enabled: bool = True


class OidcConfigRead(msgspec.Struct):
    issuer: str
    server_url: str
    realm: str
    client_id: str
    has_client_secret: bool
    scope: str
    claims: dict[str, str]
    audience: str
    enabled: bool
    redirect_uri: str
