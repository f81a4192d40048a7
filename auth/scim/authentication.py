"""SCIM bearer tokens: the tenant's IdP authenticating on ``/scim/v2/{tenant}/...``.

The SCIM routes are outside the bearer middleware (a SCIM token is no API key and no session);
this is their only way in. A token reads ``bsc_<tenant-id>_<token-id>_<secret>``: the tenant id
routes the lookup to the tenant's region, where only the HMAC of the secret is kept. The token's
tenant must be the tenant named in the URL: a token of tenant A used on B's URL is refused with
401, exactly like an unknown token, so it neither reaches B nor tells whether B exists.
"""

from __future__ import annotations

from auth import apikeys
from auth.context import scim_context, system_context
from auth.errors import InvalidCredentials
from auth.repositories import ScimTokenRepository
from auth.services import AuthenticationService
from kernel.tenancy import TenantContext


class ScimAuthenticator:
    def __init__(self, authenticator: AuthenticationService) -> None:
        self.authenticator = authenticator

    async def authenticate(self, authorization: str | None, tenant_slug: str) -> TenantContext:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise InvalidCredentials("Send 'Authorization: Bearer <SCIM token>'.")
        parsed = apikeys.parse_key(credential, apikeys.SCIM_PREFIX)
        if parsed is None:
            raise InvalidCredentials("This is not a SCIM token (bsc_...).")
        route = await self.authenticator.tenant_route(parsed.tenant_id)
        if route is None or route.slug != tenant_slug:
            raise InvalidCredentials()
        lookup = system_context(route)
        async with self.authenticator.registry.tenant_transaction(
            lookup, read_only=True
        ) as session:
            row = await ScimTokenRepository(session, lookup).get(parsed.key_id)
            if (
                row is None
                or row.revoked_at is not None
                or not apikeys.verify_secret(
                    parsed.secret, row.secret_hash, self.authenticator.pepper
                )
            ):
                raise InvalidCredentials()
            token_id = row.id
        # Checked after the credential, so a tenant's status is only told to its own IdP.
        self.authenticator.check_status(route)
        return scim_context(route, credential_id=token_id)
