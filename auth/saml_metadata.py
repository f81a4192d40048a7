"""SAML metadata import: a tenant admin gives the IdP's metadata (the document, or the URL the IdP
publishes it at, as Entra ID and Okta both do) instead of copying the entity id, SSO URL and
certificates by hand.

What the import sets: the IdP's entity id, its SingleSignOnService URL and binding
(HTTP-Redirect when offered, else HTTP-POST) and every signing certificate it publishes (Entra
publishes the next one beside the current one before a rollover: both are trusted), never an
encryption-only key. What it keeps: the SP-side settings (attribute mapping, which parts must
be signed, enabled), so a re-import only follows the IdP.

A metadata URL is tenant-configured, so untrusted: it is checked by the egress guard when given
(a refusal is a 422 ``egress_refused`` and an ``egress.refused`` audit event) and fetched only
through ``EgressFetcher`` (no redirects, 1 MiB, the addresses checked are the ones connected to).
A fetch that fails is a 503 with Retry-After. In every failure the stored settings stay as they
were.

The URL is stored with the settings and read again only when the admin asks
(``POST /v1/admin/sso/saml/metadata/refresh``): nothing fetches it in the background, so a
login never depends on the IdP's metadata endpoint, and what Bulwark trusts changes only by an
audited admin action. A refresh stays with the IdP imported (its entity id): a document that no
longer describes it is refused. A PUT of the settings by hand drops the stored URL.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import msgspec

from auth.adapters.saml import MetadataProblem, MetadataRejected, parse_idp_metadata
from auth.errors import (
    SamlConfigInvalid,
    SamlMetadataEntityIdRequired,
    SamlMetadataInvalid,
    SamlMetadataMalformed,
    SamlMetadataNoIdp,
    SamlMetadataNoSigningCertificate,
    SamlMetadataNoSsoBinding,
    SamlMetadataTooLarge,
    SamlMetadataUnavailable,
    SamlMetadataUnknownEntityId,
    SamlMetadataUnsupported,
    SamlMetadataUrlMissing,
)
from auth.saml import SAML_KIND, SamlConfig, SamlConfigService
from auth.schemas import DEFAULT_SAML_ATTRIBUTES, SamlEntityId, SamlUrl
from kernel.adapters.egress_http import EgressFetcher, EgressUnavailable
from kernel.audit_events import AuditAction, ResourceType
from kernel.egress import EgressPolicy, EgressRefused
from residency.registry import RegionRegistry

ACCEPT = "application/samlmetadata+xml, application/xml, text/xml"
MAX_CERTIFICATES = 4  # as many as the settings take (``PemCertificates``)
MAX_LISTED_ENTITY_IDS = 20
UNUSABLE_VALUES = (
    "The identity provider's entity id or SSO URL holds characters (quotes, spaces, angle "
    "brackets, ampersands) that Bulwark does not put in a SAML message."
)

_PROBLEMS: dict[MetadataProblem, type[SamlMetadataInvalid]] = {
    MetadataProblem.MALFORMED: SamlMetadataMalformed,
    MetadataProblem.NO_IDENTITY_PROVIDER: SamlMetadataNoIdp,
    MetadataProblem.ENTITY_ID_REQUIRED: SamlMetadataEntityIdRequired,
    MetadataProblem.UNKNOWN_ENTITY_ID: SamlMetadataUnknownEntityId,
    MetadataProblem.NO_SSO_BINDING: SamlMetadataNoSsoBinding,
    MetadataProblem.NO_SIGNING_CERTIFICATE: SamlMetadataNoSigningCertificate,
}


class SamlMetadataService:
    """Imports an IdP's metadata into the tenant's SAML settings (``SamlConfigService.put``,
    which checks the certificates and the toolkit's view and records ``sso.configured``)."""

    def __init__(
        self, config: SamlConfigService, *, egress: EgressPolicy, registry: RegionRegistry
    ) -> None:
        self.config = config
        self.egress = egress  # the deployment's policy, widened for this tenant
        self.registry = registry

    async def import_metadata(
        self, *, metadata_xml: str | None, metadata_url: str | None, entity_id: str | None
    ) -> SamlConfig:
        """Configure the IdP from its metadata: the document itself, or the URL it is at."""
        if metadata_url is not None and metadata_xml is None:
            document = await self._fetch(metadata_url)
        elif metadata_xml is not None and metadata_url is None:
            document = metadata_xml.encode()
        else:
            raise SamlConfigInvalid(
                "Give the metadata document (metadata_xml) or the URL it is published at "
                "(metadata_url): one of them."
            )
        return await self._apply(document, entity_id, metadata_url=metadata_url)

    async def refresh(self) -> SamlConfig:
        """Read the stored metadata URL again (the IdP rolled its keys over, say)."""
        current = await self.config.get()
        if current.metadata_url is None:
            raise SamlMetadataUrlMissing()
        document = await self._fetch(current.metadata_url)
        return await self._apply(document, current.idp_entity_id, metadata_url=current.metadata_url)

    async def _fetch(self, url: str) -> bytes:
        try:
            await self.egress.check_destination(url)
        except EgressRefused as refused:
            self._audit_refusal(refused)
            raise
        try:
            return await EgressFetcher(self.egress).get(url, accept=ACCEPT)
        except EgressUnavailable as failed:
            if failed.refused:  # the name resolved elsewhere by the time of the connection
                late = EgressRefused(
                    failed.reason.removeprefix("egress_refused:"), urlsplit(url).hostname or ""
                )
                self._audit_refusal(late)
                raise late from None
            if failed.reason == "too_large":
                raise SamlMetadataTooLarge() from None
            raise SamlMetadataUnavailable(failed.reason) from None

    def _audit_refusal(self, refused: EgressRefused) -> None:
        self.config.audit.record_refusal(
            self.registry,
            AuditAction.EGRESS_REFUSED,
            resource_type=ResourceType.IDENTITY_PROVIDER,
            resource_id=SAML_KIND,
            detail={"kind": SAML_KIND, **refused.audit_detail()},
        )

    async def _apply(
        self, document: bytes, entity_id: str | None, *, metadata_url: str | None
    ) -> SamlConfig:
        try:
            # Parsing up to 1 MiB of XML is CPU work: off the event loop.
            metadata = await asyncio.to_thread(parse_idp_metadata, document, entity_id)
        except MetadataRejected as exc:
            if exc.problem is MetadataProblem.SIGNED_REQUESTS_REQUIRED:
                raise SamlMetadataUnsupported(
                    "The identity provider wants signed AuthnRequests "
                    "(WantAuthnRequestsSigned), which Bulwark does not send."
                ) from None
            if exc.problem is MetadataProblem.UNSUPPORTED_ENTITY_ID:
                raise SamlMetadataUnsupported(UNUSABLE_VALUES) from None
            listed = list(exc.entity_ids[:MAX_LISTED_ENTITY_IDS])
            extra: dict[str, Any] = {"entity_ids": listed} if listed else {}
            raise _PROBLEMS[exc.problem](**extra) from None
        try:
            msgspec.convert(metadata.entity_id, SamlEntityId)
            msgspec.convert(metadata.sso_url, SamlUrl)
        except msgspec.ValidationError:
            raise SamlMetadataUnsupported(UNUSABLE_VALUES) from None
        if len(metadata.certificates) > MAX_CERTIFICATES:
            raise SamlMetadataUnsupported(
                f"The identity provider publishes more than {MAX_CERTIFICATES} signing "
                "certificates."
            )
        current = await self.config.current()
        return await self.config.put(
            idp_entity_id=metadata.entity_id,
            sso_url=metadata.sso_url,
            sso_binding=metadata.sso_binding,
            certificates=metadata.certificates,
            # The SP side stays as the admin set it (defaults for a first configuration).
            attributes=current.attributes if current else DEFAULT_SAML_ATTRIBUTES,
            want_assertions_signed=current.want_assertions_signed if current else True,
            want_messages_signed=current.want_messages_signed if current else False,
            enabled=current.enabled if current else True,
            metadata_url=metadata_url,
            source="metadata_url" if metadata_url else "metadata_xml",
        )
