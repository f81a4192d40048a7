from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from kernel.fields import VISIBLE, AttributeKey, AttributeValue
from kernel.json_schema import exactly_one_of, given
from kernel.tenancy import Role

# Explicit code-point classes rather than \s / \S: Python's and ECMAScript's whitespace sets
# differ, and the OpenAPI document must promise exactly what the server enforces.
_ADDR = r"[^@\x00-\x20\x7f-\x9f]"
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


# A user's ABAC attributes: up to 20 keys, each with up to 50 printable-ASCII values.
Attributes = Annotated[
    dict[AttributeKey, Annotated[list[AttributeValue], msgspec.Meta(max_length=50)]],
    msgspec.Meta(max_length=20),
]
# 0 public .. 3 restricted.
Clearance = Annotated[int, msgspec.Meta(ge=0, le=3)]


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    display_name: DisplayName | None = None
    clearance: Clearance | None = None
    attributes: Attributes | None = None
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=3)] | None = None
    # false deactivates: the user's sessions and API keys are revoked at once.
    active: bool | None = None


class UserRead(msgspec.Struct):
    id: uuid.UUID
    email: str
    display_name: str
    roles: list[Role]
    active: bool
    clearance: int
    attributes: dict[str, list[str]]
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
# Printable ASCII but "?" and "#", which start a query and a fragment.
_URL_PART = r"[!\x22$->@-~]"
# OIDC Discovery: an issuer has no query and no fragment (a bare "?" or "#" is empty, not one).
Issuer = Annotated[str, msgspec.Meta(pattern=rf"^https?://{_URL_PART}+\??#?$", max_length=2048)]
# Keycloak's base URL: the realm's path follows it.
KeycloakUrl = Annotated[str, msgspec.Meta(pattern=rf"^https?://{_URL_PART}+$", max_length=2048)]


class OidcClaimMapping(msgspec.Struct, forbid_unknown_fields=True):
    """Where each attribute is read from: a claim name, or a dotted path into nested claims.
    Okta and Entra ID send ``groups``; Entra ID app roles are ``roles``; Keycloak's realm roles
    are ``realm_access.roles``. Role values join the groups for role mappings."""

    user_id: ClaimName = "sub"
    email: ClaimName = "email"
    name: ClaimName = "name"
    groups: ClaimName = "groups"
    roles: ClaimName | None = None
    given_name: ClaimName = "given_name"
    family_name: ClaimName = "family_name"


class OidcConfigWrite(msgspec.Struct, forbid_unknown_fields=True):
    """The IdP is named by its ``issuer``, or (Keycloak) by ``server_url`` and ``realm``."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [given("issuer"), {"allOf": [given("server_url"), given("realm")]}]
    }

    client_id: Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,255}$")]
    # The provider's issuer, exactly as its tokens carry it (discovery is read from it).
    issuer: Issuer | None = None
    # Keycloak only, instead of an issuer: its base URL and realm.
    server_url: KeycloakUrl | None = None
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
    client_id: str
    has_client_secret: bool
    scope: str
    claims: dict[str, str]
    audience: str
    enabled: bool
    redirect_uri: str


# SAML ------------------------------------------------------------------------------------------
# Entity ids and URLs end up inside XML attributes that python3-saml writes without escaping:
# refuse quotes, angle brackets, ampersands, backslashes, spaces and control characters.
_URI_CHARS = r"[^\x00-\x20\x7f-\x9f\"'<>&\\]"
SamlEntityId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=1024, pattern=rf"^{_URI_CHARS}+$")
]
# The SSO URL as the SAML toolkit validates it too (python3-saml's ``validate_url`` with single
# label domains allowed): a host name, an IPv4 or IPv6 address, an optional port, and a path or
# query of URI characters that are not white space.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = (
    rf"(?:(?:{_LABEL}\.)+(?:[A-Za-z]{{2,6}}\.?|[A-Za-z0-9-]{{2,}}\.?)"
    r"|[A-Za-z0-9_][A-Za-z0-9_-]{0,61}[A-Za-z0-9_]"
    r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
    r"|\[?[A-Fa-f0-9]*:[A-Fa-f0-9:]+\]?)"
)
_PATH_CHARS = (
    r"[^\x00-\x20\x7f-\xa0\x22\x27<>&\x5c\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
SamlUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=10,
        max_length=2048,
        pattern=rf"^https?://{_HOST}(?::[0-9]+)?(?:/?|[/?]{_PATH_CHARS}+)$",
        description="The IdP's SingleSignOnService URL for the binding in sso_binding.",
    ),
]
SsoBindingName = Literal["HTTP-Redirect", "HTTP-POST"]
# One IdP's metadata is tens of kilobytes at most; a fetched document is capped at the same size
# (``kernel.adapters.egress_http.MAX_BODY``).
MAX_METADATA_CHARS = 1 << 20
MetadataUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=10,
        max_length=2048,
        pattern=r"^https?://[^\x00-\x20\x7f-\x9f\\]+$",
        description="Where the IdP publishes its metadata (fetched through the egress guard).",
    ),
]
# One PEM certificate is a few kilobytes (``auth.saml.MAX_PEM_LENGTH``); whether it is an X.509
# certificate with a usable key the service checks (422 saml_certificate_invalid).
MAX_PEM_CHARS = 16384
PemCertificates = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=MAX_PEM_CHARS)]],
    msgspec.Meta(
        min_length=1,
        max_length=4,
        description="X.509 certificates, one PEM (-----BEGIN CERTIFICATE-----) per item; more "
        "than one while the IdP rolls its signing key over (each is trusted).",
    ),
]
# Printable ASCII (``auth.saml.MAX_ATTRIBUTE_NAME``): the names IdPs send are URIs, OIDs and
# identifiers.
MAX_ATTRIBUTE_NAME_CHARS = 256
AttributeNames = Annotated[
    list[Annotated[str, msgspec.Meta(pattern=rf"^[ -~]{{1,{MAX_ATTRIBUTE_NAME_CHARS}}}$")]],
    msgspec.Meta(max_length=16, description="Attribute names, most preferred first."),
]

# What Okta, Microsoft Entra ID, Keycloak and ADFS send by default; the first present one wins.
DEFAULT_SAML_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "mail",
        "emailAddress",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
    ),
    "display_name": (
        "displayName",
        "name",
        "http://schemas.microsoft.com/identity/claims/displayname",
        "urn:oid:2.16.840.1.113730.3.1.241",
    ),
    "given_name": (
        "firstName",
        "givenName",
        "given_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "urn:oid:2.5.4.42",
    ),
    "family_name": (
        "lastName",
        "surname",
        "sn",
        "family_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "urn:oid:2.5.4.4",
    ),
    "groups": (
        "groups",
        "memberOf",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    ),
}


def _names(kind: str) -> Any:
    return msgspec.field(default_factory=lambda: list(DEFAULT_SAML_ATTRIBUTES[kind]))


class SamlAttributeMapping(msgspec.Struct, forbid_unknown_fields=True):
    """Attribute names to read each user property from, in order of preference."""

    email: AttributeNames = _names("email")
    display_name: AttributeNames = _names("display_name")
    given_name: AttributeNames = _names("given_name")
    family_name: AttributeNames = _names("family_name")
    groups: AttributeNames = _names("groups")


class SamlConfigUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The IdP's settings. Assertions or whole responses (or both) must be signed."""

    json_schema_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"properties": {"want_assertions_signed": {"const": True}}},
            {
                "required": ["want_messages_signed"],
                "properties": {"want_messages_signed": {"const": True}},
            },
        ]
    }

    idp_entity_id: SamlEntityId
    sso_url: SamlUrl
    certificates: PemCertificates
    sso_binding: SsoBindingName = "HTTP-Redirect"
    attributes: SamlAttributeMapping = msgspec.field(default_factory=SamlAttributeMapping)
    want_assertions_signed: bool = True
    want_messages_signed: bool = False
    enabled: bool = True


class SamlCertificateRead(msgspec.Struct):
    pem: str
    sha256_fingerprint: str
    not_before: datetime
    not_after: datetime


class SamlServiceProviderRead(msgspec.Struct):
    """What to enter at the IdP (or let it read from ``metadata_url``)."""

    entity_id: str
    acs_url: str
    metadata_url: str
    login_url: str


class SamlMetadataImport(msgspec.Struct, forbid_unknown_fields=True):
    """The IdP's metadata document, or the URL it is published at: exactly one of them.
    ``entity_id`` names the IdP when the document describes several."""

    json_schema_extra: ClassVar[dict[str, Any]] = exactly_one_of("metadata_xml", "metadata_url")

    metadata_xml: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_METADATA_CHARS)] | None
    ) = None
    metadata_url: MetadataUrl | None = None
    entity_id: SamlEntityId | None = None


class SamlConfigRead(msgspec.Struct):
    enabled: bool
    idp_entity_id: str
    sso_url: str
    sso_binding: str
    certificates: list[SamlCertificateRead]
    attributes: SamlAttributeMapping
    want_assertions_signed: bool
    want_messages_signed: bool
    service_provider: SamlServiceProviderRead
    # Where the IdP settings were imported from (``POST .../metadata``), for a later refresh.
    metadata_url: str | None
    updated_at: datetime


class SamlAcsForm(msgspec.Struct):
    """The IdP's HTTP-POST binding form."""

    saml_response: Annotated[str, msgspec.Meta(min_length=1, max_length=512 * 1024)] = (
        msgspec.field(name="SAMLResponse")
    )
    relay_state: Annotated[str, msgspec.Meta(max_length=2048)] | None = msgspec.field(
        default=None, name="RelayState"
    )
