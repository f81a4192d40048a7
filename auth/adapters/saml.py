"""SAML 2.0 service provider over python3-saml (the OneLogin toolkit): SP metadata, AuthnRequests
(HTTP-Redirect or HTTP-POST binding), the validation of the IdP's Response (HTTP-POST binding),
and the reading of an IdP's own metadata (``parse_idp_metadata``).

python3-saml runs in strict mode and does the XML-signature work: the signature is checked against
the tenant's configured IdP certificates only (never a certificate embedded in the message), the
signed element must be the Response or the one Assertion (a second Assertion anywhere in the
document, a Signature on any other element, duplicate IDs or a Reference that does not point at
its parent are refused: the XML-signature-wrapping attacks), SHA-1 is refused, and the document
must match the SAML protocol schema (no DTDs, no entities).

python3-saml is lenient where the Web Browser SSO profile is not, so ``validate`` adds, on the
signed assertion only (the one whose id python3-saml's ``get_assertion_id`` reports: the
element the verified signature covers): the Response must answer *our* AuthnRequest (an
unsolicited Response passes python3-saml when it lacks ``InResponseTo``); an
``AudienceRestriction`` naming this SP must be present (an absent one passes python3-saml); a
bearer ``SubjectConfirmationData`` must name exactly our ACS as ``Recipient`` (python3-saml only
checks that the ACS is a substring), answer our request and carry ``NotOnOrAfter``; a
``Destination`` must equal our ACS; and ``Conditions`` times are checked with the deployment's
clock skew (python3-saml's own allowance there is a process-wide 300 s, which this does not
change; it allows no skew on ``SubjectConfirmationData`` times, which are minutes wide in
practice).

Nothing here touches the database or HTTP: the caller passes the SP and IdP settings, and the
request facts that python3-saml would otherwise read from the request are derived from the
deployment's public URL, never from client headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

# The longest ids and NameIDs stored (the replay table's and users.idp_subject's columns).
MAX_ID_LENGTH = 256


class SsoBinding(StrEnum):
    """How the browser carries the AuthnRequest to the IdP's SingleSignOnService."""

    REDIRECT = "HTTP-Redirect"
    POST = "HTTP-POST"


_BINDING_URNS = {
    SsoBinding.REDIRECT: Constants.BINDING_HTTP_REDIRECT,
    SsoBinding.POST: Constants.BINDING_HTTP_POST,
}


class Rejection(StrEnum):
    """Why a SAML Response was refused (the service turns each into a stable error code)."""

    INVALID_SIGNATURE = "invalid_signature"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    WRONG_DESTINATION = "wrong_destination"
    WRONG_ISSUER = "wrong_issuer"
    UNSOLICITED = "unsolicited"
    IDP_ERROR = "idp_error"
    INVALID_RESPONSE = "invalid_response"


class SamlRejected(Exception):
    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


class SamlSettingsInvalid(Exception):
    """The toolkit refuses these settings (e.g. a URL it cannot use); ``errors`` are its codes."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ServiceProvider:
    """This deployment as one tenant's SP: both URLs derive from the public URL and the slug."""

    entity_id: str
    acs_url: str


@dataclass(frozen=True, slots=True)
class IdentityProviderSettings:
    entity_id: str
    sso_url: str
    certificates: tuple[str, ...]  # PEM, every one trusted (rollover)
    want_assertions_signed: bool
    want_messages_signed: bool
    sso_binding: SsoBinding = SsoBinding.REDIRECT


@dataclass(frozen=True, slots=True)
class AuthnRequest:
    """A new AuthnRequest, ready for the browser: for HTTP-Redirect, ``url`` carries it; for
    HTTP-POST, the browser posts ``form`` (SAMLRequest, RelayState) to ``url``."""

    id: str
    binding: SsoBinding
    url: str
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ValidatedAssertion:
    """What a validated Response asserts (from the signed assertion only)."""

    assertion_id: str
    name_id: str
    name_id_format: str | None
    attributes: dict[str, tuple[str, ...]]
    # The latest instant at which the assertion could still be accepted (replay cache horizon).
    valid_until: datetime
    # The IdP's SessionNotOnOrAfter, when it gave one: a session must not outlive it.
    session_not_on_or_after: datetime | None


_REASONS = {
    OneLogin_Saml2_ValidationError.INVALID_SIGNATURE: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.NO_SIGNATURE_FOUND: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.NO_SIGNED_ASSERTION: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.NO_SIGNED_MESSAGE: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.WRONG_SIGNED_ELEMENT: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.ID_NOT_FOUND_IN_SIGNED_ELEMENT: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.DUPLICATED_ID_IN_SIGNED_ELEMENTS: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.INVALID_SIGNED_ELEMENT: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: (
        Rejection.INVALID_SIGNATURE
    ),
    OneLogin_Saml2_ValidationError.UNEXPECTED_SIGNED_ELEMENTS: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: (
        Rejection.INVALID_SIGNATURE
    ),
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: (
        Rejection.INVALID_SIGNATURE
    ),
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.DEPRECATED_SIGNATURE_METHOD: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.DEPRECATED_DIGEST_METHOD: Rejection.INVALID_SIGNATURE,
    OneLogin_Saml2_ValidationError.WRONG_AUDIENCE: Rejection.WRONG_AUDIENCE,
    OneLogin_Saml2_ValidationError.SP_NAME_QUALIFIER_NAME_MISMATCH: Rejection.WRONG_AUDIENCE,
    OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED: Rejection.EXPIRED,
    OneLogin_Saml2_ValidationError.ASSERTION_TOO_EARLY: Rejection.EXPIRED,
    OneLogin_Saml2_ValidationError.SESSION_EXPIRED: Rejection.EXPIRED,
    OneLogin_Saml2_ValidationError.RESPONSE_EXPIRED: Rejection.EXPIRED,
    OneLogin_Saml2_ValidationError.WRONG_DESTINATION: Rejection.WRONG_DESTINATION,
    OneLogin_Saml2_ValidationError.EMPTY_DESTINATION: Rejection.WRONG_DESTINATION,
    OneLogin_Saml2_ValidationError.WRONG_ISSUER: Rejection.WRONG_ISSUER,
    OneLogin_Saml2_ValidationError.ISSUER_MULTIPLE_IN_RESPONSE: Rejection.WRONG_ISSUER,
    OneLogin_Saml2_ValidationError.ISSUER_NOT_FOUND_IN_ASSERTION: Rejection.WRONG_ISSUER,
    OneLogin_Saml2_ValidationError.WRONG_INRESPONSETO: Rejection.UNSOLICITED,
    OneLogin_Saml2_ValidationError.STATUS_CODE_IS_NOT_SUCCESS: Rejection.IDP_ERROR,
}


def request_data(public_url: str, path: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    """The request facts python3-saml checks Destination and Recipient against, from the public
    URL (scheme, host and port, base path): a client's Host or X-Forwarded-* headers never count.
    """
    url = urlsplit(public_url)
    return {
        "https": "on" if url.scheme == "https" else "off",
        "http_host": url.netloc,
        "script_name": url.path.rstrip("/") + path,
        "get_data": {},
        "post_data": dict(post or {}),
    }


class OneLoginSaml:
    """The SAML SP toolkit, as the SAML service uses it. Stateless; safe to share."""

    def check(self, sp: ServiceProvider, idp: IdentityProviderSettings) -> None:
        """Raise ``SamlSettingsInvalid`` when the toolkit could not log in with these settings."""
        self._settings(sp, idp)

    def metadata(self, sp: ServiceProvider, *, want_assertions_signed: bool) -> str:
        """The SP's metadata (EntityDescriptor with the HTTP-POST ACS), schema-checked."""
        settings = self._settings(sp, None, want_assertions_signed=want_assertions_signed)
        xml = settings.get_sp_metadata()
        text = xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)
        errors = settings.validate_metadata(text)
        if errors:
            raise SamlSettingsInvalid([str(error) for error in errors])
        return text

    def authn_request(
        self, sp: ServiceProvider, idp: IdentityProviderSettings, *, relay_state: str
    ) -> AuthnRequest:
        """A new AuthnRequest in the IdP's binding: deflated in the URL for HTTP-Redirect,
        plain base64 in a form for HTTP-POST (SAML bindings, sections 3.4.4 and 3.5.4)."""
        settings = self._settings(sp, idp)
        request = OneLogin_Saml2_Authn_Request(settings)
        if idp.sso_binding is SsoBinding.POST:
            form = {"SAMLRequest": request.get_request(deflate=False), "RelayState": relay_state}
            return AuthnRequest(request.get_id(), SsoBinding.POST, idp.sso_url, form)
        url = OneLogin_Saml2_Utils.redirect(
            idp.sso_url, {"SAMLRequest": request.get_request(), "RelayState": relay_state}
        )
        return AuthnRequest(request.get_id(), SsoBinding.REDIRECT, url)

    def validate(
        self,
        sp: ServiceProvider,
        idp: IdentityProviderSettings,
        saml_response: str,
        *,
        public_url: str,
        acs_path: str,
        request_id: str,
        clock_skew: int,
        now: float | None = None,
    ) -> ValidatedAssertion:
        """Validate a base64 ``SAMLResponse`` that should answer AuthnRequest ``request_id``.

        Raises ``SamlRejected`` with the reason; never returns an unsigned or foreign assertion.
        """
        settings = self._settings(sp, idp)
        data = request_data(public_url, acs_path, {"SAMLResponse": saml_response})
        now = now or time.time()
        try:
            response = OneLogin_Saml2_Response(settings, saml_response)
        except Exception:  # malformed base64 or XML, a DTD, entities: just invalid
            raise SamlRejected(Rejection.INVALID_RESPONSE) from None
        try:
            response.is_valid(data, request_id=request_id, raise_exceptions=True)
        except OneLogin_Saml2_ValidationError as exc:
            if exc.code == OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION:
                raise SamlRejected(_why_unconfirmed(response, sp, request_id, now)) from None
            raise SamlRejected(_REASONS.get(exc.code, Rejection.INVALID_RESPONSE)) from None
        except Exception:  # an unparsable time, a broken signature structure: just invalid
            raise SamlRejected(Rejection.INVALID_RESPONSE) from None
        return _profile_checks(response, sp, request_id, clock_skew, now)

    @staticmethod
    def _settings(
        sp: ServiceProvider,
        idp: IdentityProviderSettings | None,
        *,
        want_assertions_signed: bool = True,
    ) -> OneLogin_Saml2_Settings:
        security: dict[str, Any] = {
            "authnRequestsSigned": False,
            "wantAssertionsSigned": idp.want_assertions_signed if idp else want_assertions_signed,
            "wantMessagesSigned": idp.want_messages_signed if idp else False,
            "wantNameId": True,
            # Email may come from the NameID; the service requires what it needs.
            "wantAttributeStatement": False,
            # Let the IdP choose how to authenticate (MFA, passkeys): no PasswordProtectedTransport.
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            "allowRepeatAttributeName": False,
            # Internal IdP host names (``http://keycloak:8080``) are valid SSO URLs.
            "allowSingleLabelDomains": True,
        }
        data: dict[str, Any] = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": sp.entity_id,
                "assertionConsumerService": {
                    "url": sp.acs_url,
                    "binding": Constants.BINDING_HTTP_POST,
                },
                "NameIDFormat": Constants.NAMEID_UNSPECIFIED,
            },
            "security": security,
        }
        if idp is not None:
            data["idp"] = {
                "entityId": idp.entity_id,
                "singleSignOnService": {
                    "url": idp.sso_url,
                    "binding": _BINDING_URNS[idp.sso_binding],
                },
                "x509certMulti": {"signing": list(idp.certificates)},
            }
        try:
            return OneLogin_Saml2_Settings(data, sp_validation_only=idp is None)
        except OneLogin_Saml2_Error as exc:
            raise SamlSettingsInvalid(_settings_errors(exc)) from None


def _settings_errors(exc: OneLogin_Saml2_Error) -> list[str]:
    message = str(exc)
    _, _, listed = message.partition(": ")
    return [error for error in listed.split(",") if error] or [message]


def _saml_time(value: str | None) -> int | None:
    return OneLogin_Saml2_Utils.parse_SAML_to_time(value) if value else None


def _profile_checks(
    response: OneLogin_Saml2_Response,
    sp: ServiceProvider,
    request_id: str,
    skew: int,
    now: float,
) -> ValidatedAssertion:
    """The Web Browser SSO profile's rules that python3-saml leaves open (see the module doc)."""
    try:
        if response.get_in_response_to() != request_id:
            raise SamlRejected(Rejection.UNSOLICITED)
        destination = response.document.get("Destination")
        if destination is not None and destination != sp.acs_url:
            raise SamlRejected(Rejection.WRONG_DESTINATION)
        if sp.entity_id not in response.get_audiences():
            raise SamlRejected(Rejection.WRONG_AUDIENCE)

        assertion = _signed_assertion(response)
        conditions = OneLogin_Saml2_XML.query(assertion, "./saml:Conditions")[0]
        not_before = _saml_time(conditions.get("NotBefore"))
        not_on_or_after = _saml_time(conditions.get("NotOnOrAfter"))
        if not_before is not None and not_before > now + skew:
            raise SamlRejected(Rejection.EXPIRED)
        if not_on_or_after is not None and not_on_or_after + skew <= now:
            raise SamlRejected(Rejection.EXPIRED)

        confirmed_until = _bearer_confirmation(assertion, sp, request_id, skew, now)

        assertion_id = assertion.get("ID") or ""
        name_id = response.get_nameid() or ""
        if not (0 < len(assertion_id) <= MAX_ID_LENGTH and 0 < len(name_id) <= MAX_ID_LENGTH):
            raise SamlRejected(Rejection.INVALID_RESPONSE)
        attributes = {
            name: tuple(value for value in values if isinstance(value, str))
            for name, values in response.get_attributes().items()
        }
        session_end = response.get_session_not_on_or_after()
        limits = [confirmed_until] + ([not_on_or_after] if not_on_or_after else [])
        return ValidatedAssertion(
            assertion_id=assertion_id,
            name_id=name_id,
            name_id_format=response.get_nameid_format(),
            attributes=attributes,
            valid_until=datetime.fromtimestamp(max(limits) + skew, UTC),
            session_not_on_or_after=(
                datetime.fromtimestamp(session_end, UTC) if session_end else None
            ),
        )
    except SamlRejected:
        raise
    except OneLogin_Saml2_ValidationError as exc:
        raise SamlRejected(_REASONS.get(exc.code, Rejection.INVALID_RESPONSE)) from None
    except Exception:
        raise SamlRejected(Rejection.INVALID_RESPONSE) from None


def _signed_assertion(response: OneLogin_Saml2_Response) -> Any:
    """The Response's one assertion, found by the id python3-saml reports for it: the id the
    signature's Reference names (a signed assertion), or the assertion of a signed Response.
    Public API only (``get_assertion_id``, which refuses a Response with other than one
    assertion, and ``OneLogin_Saml2_XML.query``); strict validation has already refused
    duplicate ids and signatures on other elements, so exactly one element matches."""
    nodes = OneLogin_Saml2_XML.query(
        response.get_xml_document(),
        "/samlp:Response/saml:Assertion[@ID=$tagid]",
        None,
        response.get_assertion_id(),
    )
    if len(nodes) != 1:
        raise SamlRejected(Rejection.INVALID_SIGNATURE)
    return nodes[0]


def _bearer_confirmation(
    assertion: Any, sp: ServiceProvider, request_id: str, skew: int, now: float
) -> int:
    """The NotOnOrAfter of the bearer SubjectConfirmationData that confirms this login: exactly
    our ACS as Recipient, our request as InResponseTo, and a NotOnOrAfter that has not passed."""
    reason = Rejection.INVALID_RESPONSE
    confirmations = OneLogin_Saml2_XML.query(assertion, "./saml:Subject/saml:SubjectConfirmation")
    for confirmation in confirmations:
        if confirmation.get("Method") != Constants.CM_BEARER:
            continue
        for data in OneLogin_Saml2_XML.query(confirmation, "./saml:SubjectConfirmationData"):
            if data.get("Recipient") != sp.acs_url:
                reason = Rejection.WRONG_DESTINATION
                continue
            if data.get("InResponseTo") != request_id:
                reason = Rejection.UNSOLICITED
                continue
            not_on_or_after = _saml_time(data.get("NotOnOrAfter"))
            not_before = _saml_time(data.get("NotBefore"))
            if (
                not_on_or_after is None
                or not_on_or_after + skew <= now
                or (not_before is not None and not_before > now + skew)
            ):
                reason = Rejection.EXPIRED
                continue
            return not_on_or_after
    raise SamlRejected(reason)


def _why_unconfirmed(
    response: OneLogin_Saml2_Response, sp: ServiceProvider, request_id: str, now: float
) -> Rejection:
    """A more useful reason than python3-saml's "no valid SubjectConfirmation" (which it checks
    with no clock skew): expired, or not addressed to us. Only the reason code depends on it."""
    try:
        _bearer_confirmation(_signed_assertion(response), sp, request_id, 0, now)
    except SamlRejected as exc:
        return exc.reason
    except Exception:
        return Rejection.INVALID_RESPONSE
    return Rejection.INVALID_RESPONSE


# IdP metadata -----------------------------------------------------------------------------------
class MetadataProblem(StrEnum):
    """Why an IdP's metadata document cannot configure a login."""

    MALFORMED = "malformed"  # not XML, a DTD or entity declarations, an entity id twice
    NO_IDENTITY_PROVIDER = "no_identity_provider"
    ENTITY_ID_REQUIRED = "entity_id_required"
    UNKNOWN_ENTITY_ID = "unknown_entity_id"
    NO_SSO_BINDING = "no_sso_binding"
    NO_SIGNING_CERTIFICATE = "no_signing_certificate"
    SIGNED_REQUESTS_REQUIRED = "signed_requests_required"
    UNSUPPORTED_ENTITY_ID = "unsupported_entity_id"  # a quote: no XPath literal can name it


class MetadataRejected(Exception):
    def __init__(self, problem: MetadataProblem, entity_ids: tuple[str, ...] = ()) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.entity_ids = entity_ids  # the IdPs the document does describe, for the admin


@dataclass(frozen=True, slots=True)
class IdpMetadata:
    """What an IdP's metadata says a login needs."""

    entity_id: str
    sso_url: str
    sso_binding: SsoBinding
    certificates: tuple[str, ...]  # PEM: the signing keys, in document order (rollover: several)


# Keys a KeyDescriptor offers for signing: ``use="signing"``, or no ``use`` (both purposes).
# Encryption-only keys never verify a signature.
_SIGNING_CERTIFICATES = (
    "./md:KeyDescriptor[not(@use) or @use='signing']/ds:KeyInfo/ds:X509Data/ds:X509Certificate"
)


def parse_idp_metadata(document: bytes | str, entity_id: str | None = None) -> IdpMetadata:
    """The IdP settings in a SAML metadata document (an ``EntityDescriptor``, or an
    ``EntitiesDescriptor`` of several: then ``entity_id`` names the IdP, unless only one is an
    IdP). ``MetadataRejected`` says why a document cannot be used.

    python3-saml parses: its parser refuses DTDs and entity declarations (no XXE, no entity
    expansion) and never touches the network; its ``IdPMetadataParser.parse`` reads the entity
    id, the SingleSignOnService of each binding and WantAuthnRequestsSigned. The signing
    certificates are read here, because ``parse`` folds a lone encryption-only key into the
    same ``x509cert`` field as a signing key. The metadata's own XML signature (Entra signs
    its document) is not checked: its key comes in the same document, so it proves nothing
    that the https fetch or the admin's upload does not.
    """
    try:
        dom = OneLogin_Saml2_XML.to_etree(document)
    except Exception:  # not XML, a DTD, entity declarations: nothing is expanded or fetched
        raise MetadataRejected(MetadataProblem.MALFORMED) from None
    providers = [
        str(node.get("entityID") or "")
        for node in OneLogin_Saml2_XML.query(dom, "//md:EntityDescriptor[md:IDPSSODescriptor]")
    ]
    named = tuple(dict.fromkeys(providers))
    if not providers:
        raise MetadataRejected(MetadataProblem.NO_IDENTITY_PROVIDER)
    if entity_id is None:
        if len(named) > 1:
            raise MetadataRejected(MetadataProblem.ENTITY_ID_REQUIRED, named)
        entity_id = named[0]
    elif entity_id not in named:
        raise MetadataRejected(MetadataProblem.UNKNOWN_ENTITY_ID, named)
    # ``parse`` selects the entity by a quoted XPath literal: an id with a quote cannot be named.
    if "'" in entity_id:
        raise MetadataRejected(MetadataProblem.UNSUPPORTED_ENTITY_ID)
    described = OneLogin_Saml2_XML.query(
        dom, "//md:EntityDescriptor[@entityID=$tagid]", None, entity_id
    )
    if len(described) != 1:
        raise MetadataRejected(MetadataProblem.MALFORMED)

    sso: dict[SsoBinding, str] = {}
    wants_signed_requests = False
    for binding, urn in _BINDING_URNS.items():
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(
            dom, required_sso_binding=urn, entity_id=entity_id
        )
        url = parsed.get("idp", {}).get("singleSignOnService", {}).get("url")
        if url:
            sso[binding] = str(url)
        wants_signed_requests = bool(parsed.get("security", {}).get("authnRequestsSigned"))
    if not sso:
        raise MetadataRejected(MetadataProblem.NO_SSO_BINDING)
    if wants_signed_requests:
        raise MetadataRejected(MetadataProblem.SIGNED_REQUESTS_REQUIRED)

    # The descriptor ``parse`` read: the entity's first IDPSSODescriptor.
    descriptor = OneLogin_Saml2_XML.query(described[0], "./md:IDPSSODescriptor")[0]
    certificates = tuple(
        dict.fromkeys(
            OneLogin_Saml2_Utils.format_cert("".join((node.text or "").split()))
            for node in OneLogin_Saml2_XML.query(descriptor, _SIGNING_CERTIFICATES)
            if (node.text or "").strip()
        )
    )
    if not certificates:
        raise MetadataRejected(MetadataProblem.NO_SIGNING_CERTIFICATE)
    # HTTP-Redirect when offered: a plain redirect, no page of ours in between.
    binding = SsoBinding.REDIRECT if SsoBinding.REDIRECT in sso else SsoBinding.POST
    return IdpMetadata(entity_id, sso[binding], binding, certificates)
