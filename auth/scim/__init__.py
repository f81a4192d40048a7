"""SCIM 2.0 provisioning (RFC 7643 / 7644) of a tenant's users and groups by its IdP."""

from auth.scim.authentication import ScimAuthenticator
from auth.scim.controllers import (
    AdminScimTokenController,
    ScimDiscoveryController,
    ScimGroupController,
    ScimRootSearchController,
    ScimUserController,
)
from auth.scim.http import SCIM_EXCEPTION_HANDLERS, scim_exception_handler
from auth.scim.services import (
    ScimGroupService,
    ScimSearchService,
    ScimTokenService,
    ScimUserService,
)

SCIM_PREFIX = "/scim"

__all__ = [
    "SCIM_EXCEPTION_HANDLERS",
    "SCIM_PREFIX",
    "AdminScimTokenController",
    "ScimAuthenticator",
    "ScimDiscoveryController",
    "ScimGroupController",
    "ScimGroupService",
    "ScimRootSearchController",
    "ScimSearchService",
    "ScimTokenService",
    "ScimUserController",
    "ScimUserService",
    "scim_exception_handler",
]
