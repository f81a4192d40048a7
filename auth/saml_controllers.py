"""SAML SSO routes: the tenant admin's configuration (by hand, or imported from the IdP's
metadata), and the unauthenticated browser endpoints (SP metadata, login, assertion consumer
service) under ``/auth/{tenant slug}/saml``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, URLEncodedBody
from litestar.response import Redirect

from auth.adapters.saml import OneLoginSaml, SsoBinding
from auth.middleware import EXCLUDE_FROM_AUTH, SESSION_COOKIE
from auth.saml import (
    STATE_COOKIE,
    SamlConfig,
    SamlConfigService,
    SamlEndpoints,
    SamlLoginService,
)
from auth.saml_metadata import SamlMetadataService
from auth.schemas import (
    SamlAcsForm,
    SamlAttributeMapping,
    SamlCertificateRead,
    SamlConfigRead,
    SamlConfigUpdate,
    SamlMetadataImport,
    SamlServiceProviderRead,
)
from auth.sso_controllers import ReturnTo
from kernel.api import SECURED, problem_responses
from kernel.guards import requires_role
from kernel.settings import Settings
from kernel.tenancy import Role

SAML_METADATA = "application/samlmetadata+xml"
# The toolkit is stateless: one for the process.
TOOLKIT = OneLoginSaml()
NO_STORE = {"Cache-Control": "no-store"}


def saml_config_read(config: SamlConfig, endpoints: SamlEndpoints) -> SamlConfigRead:
    return SamlConfigRead(
        enabled=config.enabled,
        idp_entity_id=config.idp_entity_id,
        sso_url=config.sso_url,
        sso_binding=config.sso_binding.value,
        certificates=[
            SamlCertificateRead(
                pem=c.pem,
                sha256_fingerprint=c.sha256_fingerprint,
                not_before=c.not_before,
                not_after=c.not_after,
            )
            for c in config.certificates
        ],
        attributes=SamlAttributeMapping(
            **{kind: list(names) for kind, names in config.attributes.items()}
        ),
        want_assertions_signed=config.want_assertions_signed,
        want_messages_signed=config.want_messages_signed,
        service_provider=SamlServiceProviderRead(
            entity_id=endpoints.entity_id,
            acs_url=endpoints.acs_url,
            metadata_url=endpoints.entity_id,
            login_url=endpoints.login_url,
        ),
        metadata_url=config.metadata_url,
        updated_at=config.updated_at,
    )


class SamlConfigController(Controller):
    path = "/v1/admin/sso/saml"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]

    @get("/", responses=problem_responses(404), summary="The tenant's SAML identity provider")
    async def get_saml_config(
        self, saml_config: NamedDependency[SamlConfigService]
    ) -> SamlConfigRead:
        return saml_config_read(await saml_config.get(), saml_config.endpoints)

    @put(
        "/",
        responses=problem_responses(422),
        summary="Configure SAML SSO (signed responses and/or assertions are required)",
    )
    async def put_saml_config(
        self, saml_config: NamedDependency[SamlConfigService], data: JSONBody[SamlConfigUpdate]
    ) -> SamlConfigRead:
        attributes = data.attributes
        config = await saml_config.put(
            idp_entity_id=data.idp_entity_id,
            sso_url=data.sso_url,
            certificates=data.certificates,
            attributes={
                "email": attributes.email,
                "display_name": attributes.display_name,
                "given_name": attributes.given_name,
                "family_name": attributes.family_name,
                "groups": attributes.groups,
            },
            want_assertions_signed=data.want_assertions_signed,
            want_messages_signed=data.want_messages_signed,
            enabled=data.enabled,
            sso_binding=SsoBinding(data.sso_binding),
        )
        return saml_config_read(config, saml_config.endpoints)

    @post(
        "/metadata",
        status_code=200,
        responses=problem_responses(422, 503),
        summary="Configure the SAML IdP from its metadata (the document, or its URL)",
        description="Sets the IdP's entity id, SSO URL and binding and its signing "
        "certificates from the metadata Entra ID, Okta and other IdPs publish; keeps the "
        "attribute mapping and signing requirements. A URL is fetched once, through the egress "
        "guard, and kept for POST .../metadata/refresh.",
    )
    async def import_saml_metadata(
        self,
        saml_config: NamedDependency[SamlConfigService],
        saml_metadata: NamedDependency[SamlMetadataService],
        data: JSONBody[SamlMetadataImport],
    ) -> SamlConfigRead:
        config = await saml_metadata.import_metadata(
            metadata_xml=data.metadata_xml,
            metadata_url=data.metadata_url,
            entity_id=data.entity_id,
        )
        return saml_config_read(config, saml_config.endpoints)

    @post(
        "/metadata/refresh",
        status_code=200,
        responses=problem_responses(404, 409, 422, 503),
        summary="Read the IdP's metadata URL again (e.g. after a signing-key rollover)",
    )
    async def refresh_saml_metadata(
        self,
        saml_config: NamedDependency[SamlConfigService],
        saml_metadata: NamedDependency[SamlMetadataService],
    ) -> SamlConfigRead:
        return saml_config_read(await saml_metadata.refresh(), saml_config.endpoints)


# The HTTP-POST binding's page submits its form at once; the Content-Security-Policy allows that
# one script (by its hash) and a form post to the IdP's origin only.
_SUBMIT = "document.forms[0].submit();"
_SUBMIT_HASH = base64.b64encode(hashlib.sha256(_SUBMIT.encode()).digest()).decode()


def post_binding_page(url: str, form: Mapping[str, str]) -> Response[str]:
    """The page that carries an AuthnRequest to the IdP in the HTTP-POST binding."""
    target = urlsplit(url)
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in form.items()
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Signing in</title></head>'
        f'<body><form method="post" action="{escape(url)}">{fields}'
        '<noscript><button type="submit">Continue to sign in</button></noscript></form>'
        f"<script>{_SUBMIT}</script></body></html>"
    )
    policy = (
        f"default-src 'none'; script-src 'sha256-{_SUBMIT_HASH}'; "
        f"form-action {target.scheme}://{target.netloc}; frame-ancestors 'none'; base-uri 'none'"
    )
    return Response(
        page,
        status_code=200,
        media_type="text/html",
        headers={**NO_STORE, "Content-Security-Policy": policy, "Referrer-Policy": "no-referrer"},
    )


class SamlController(Controller):
    """The browser side of SAML SSO. Unauthenticated: the IdP's signature is the credential."""

    path = "/auth/{tenant:str}/saml"
    tags = ["sso"]
    opt = {EXCLUDE_FROM_AUTH: True}

    @get(
        "/metadata",
        media_type=SAML_METADATA,
        responses=problem_responses(404),
        summary="This tenant's SAML service-provider metadata",
    )
    async def saml_metadata(
        self, saml_login: NamedDependency[SamlLoginService], tenant: FromPath[str]
    ) -> Response[str]:
        return Response(await saml_login.metadata(tenant), media_type=SAML_METADATA)

    @get(
        "/login",
        status_code=302,
        responses=problem_responses(404),
        summary="Start a SAML login: redirect to the tenant's IdP with an AuthnRequest",
        description="HTTP-Redirect binding: a 302 to the IdP. HTTP-POST binding (an IdP that "
        "offers only that): a 200 page whose form posts the AuthnRequest to the IdP.",
    )
    async def saml_login(
        self,
        saml_login: NamedDependency[SamlLoginService],
        settings: NamedDependency[Settings],
        tenant: FromPath[str],
        return_to: ReturnTo = None,
    ) -> Response[Any]:
        started = await saml_login.begin(tenant, return_to)
        secure = settings.identity.cookie_secure
        response: Response[Any]
        if started.form is not None:
            response = post_binding_page(started.url, started.form)
        else:
            response = Redirect(started.url, status_code=302, headers=NO_STORE)
        # The IdP posts the response back cross-site: only a SameSite=None cookie comes with it,
        # and browsers accept those only when Secure.
        response.set_cookie(
            STATE_COOKIE,
            started.state,
            max_age=started.max_age,
            path=started.cookie_path,
            secure=secure,
            httponly=True,
            samesite="none" if secure else "lax",
        )
        return response

    @post(
        "/acs",
        status_code=303,
        responses=problem_responses(404),
        summary="Assertion consumer service (HTTP-POST binding): sign in, set the session cookie",
    )
    async def saml_acs(
        self,
        request: Request[Any, Any, Any],
        saml_login: NamedDependency[SamlLoginService],
        settings: NamedDependency[Settings],
        tenant: FromPath[str],
        data: URLEncodedBody[SamlAcsForm],
    ) -> Redirect:
        done = await saml_login.complete(
            tenant, data.saml_response, data.relay_state, request.cookies.get(STATE_COOKIE)
        )
        identity = settings.identity
        response = Redirect(done.redirect_to, status_code=303, headers=NO_STORE)
        response.set_cookie(
            SESSION_COOKIE,
            done.session_token,
            max_age=done.max_age,
            path="/",
            secure=identity.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(STATE_COOKIE, path=done.cookie_path)
        return response
