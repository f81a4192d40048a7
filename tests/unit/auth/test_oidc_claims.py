"""What Bulwark reads from a provider's documents and tokens, whatever the provider."""

from __future__ import annotations

import pytest

from auth.adapters.oidc import OidcRejected, OidcUnreachable, ProviderMetadata
from auth.oidc import DEFAULT_CLAIMS, OidcSettings, identity_from_claims

ENTRA = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
OKTA = "https://dev-123456.okta.com/oauth2/default"
AUTH0 = "https://acme.eu.auth0.com/"


def discovery(issuer: str, **extra: object) -> dict[str, object]:
    base = issuer.rstrip("/")
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/keys",
        **extra,
    }


@pytest.mark.parametrize("issuer", [ENTRA, OKTA, AUTH0])
def test_any_issuer_shape_is_accepted_when_the_document_names_it_exactly(issuer: str) -> None:
    metadata = ProviderMetadata.parse(discovery(issuer), issuer)
    assert metadata.issuer == issuer
    assert metadata.jwks_uri.startswith(issuer.rstrip("/"))


@pytest.mark.parametrize(
    ("configured", "document"),
    [
        (AUTH0.rstrip("/"), AUTH0),  # Auth0's trailing slash is part of its issuer
        (ENTRA, ENTRA.replace("/v2.0", "")),  # the v1 issuer is another issuer
        # Entra's multi-tenant document names a template, never a tenant's issuer.
        (ENTRA, "https://login.microsoftonline.com/{tenantid}/v2.0"),
    ],
)
def test_an_issuer_that_differs_in_any_character_is_refused(configured: str, document: str) -> None:
    with pytest.raises(OidcRejected) as refused:
        ProviderMetadata.parse(discovery(document), configured)
    assert refused.value.reason == "issuer_mismatch"


def test_a_document_without_its_endpoints_is_the_provider_being_unusable() -> None:
    broken = discovery(OKTA)
    del broken["jwks_uri"]
    with pytest.raises(OidcUnreachable):
        ProviderMetadata.parse(broken, OKTA)
    with pytest.raises(OidcUnreachable):
        ProviderMetadata.parse(discovery(OKTA, token_endpoint="file:///etc/passwd"), OKTA)


@pytest.mark.parametrize(
    ("methods", "chosen"),
    [
        (None, "client_secret_basic"),
        (["client_secret_basic", "client_secret_post"], "client_secret_basic"),
        (["client_secret_post"], "client_secret_post"),
    ],
)
def test_client_authentication_follows_what_the_provider_offers(
    methods: list[str] | None, chosen: str
) -> None:
    extra = {} if methods is None else {"token_endpoint_auth_methods_supported": methods}
    metadata = ProviderMetadata.parse(discovery(OKTA, **extra), OKTA)
    assert metadata.client_auth_method(has_secret=True) == chosen
    assert metadata.client_auth_method(has_secret=False) == "none"


def settings(**claims: str) -> OidcSettings:
    return OidcSettings(
        issuer=OKTA,
        client_id="c",
        scopes=("openid",),
        claims={**DEFAULT_CLAIMS, **claims},
        audience="c",
        enabled=True,
    )


def test_groups_and_roles_come_from_their_claim_paths() -> None:
    keycloak = identity_from_claims(
        settings(roles="realm_access.roles"),
        {
            "sub": "s",
            "email": "A@Example.com",
            "groups": ["/engineering", "/engineering/platform"],
            "realm_access": {"roles": ["auditor", "offline_access"]},
        },
    )
    assert keycloak.groups == ("engineering", "engineering/platform", "auditor", "offline_access")
    assert keycloak.email == "a@example.com"
    entra = identity_from_claims(
        settings(roles="roles", user_id="oid"),
        {"sub": "pairwise", "oid": "o-1", "email": "b@x.example", "groups": ["g1"], "roles": ["r"]},
    )
    assert (entra.subject, entra.groups, entra.groups_overage) == ("o-1", ("g1", "r"), False)
    # Auth0 namespaces custom claims with URLs: a claim with dots in its name is read as is.
    auth0 = identity_from_claims(
        settings(groups="https://bulwark.example/groups"),
        {"sub": "s", "email": "c@x.example", "https://bulwark.example/groups": ["ops"]},
    )
    assert auth0.groups == ("ops",)


def test_entra_group_overage_is_noticed_and_no_group_assumed() -> None:
    identity = identity_from_claims(
        settings(),
        {
            "sub": "s",
            "email": "d@x.example",
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/x"}},
        },
    )
    assert identity.groups_overage is True and identity.groups == ()


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "e@x.example"},
        {"sub": "", "email": "e@x.example"},
        {"sub": "s", "email": "not-an-email"},
        {"sub": ["s"], "email": "e@x.example"},
    ],
)
def test_a_token_without_a_usable_identity_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(OidcRejected) as refused:
        identity_from_claims(settings(), claims)
    assert refused.value.reason == "missing_identity_claims"
