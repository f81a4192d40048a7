"""SAML 2.0 service provider over python3-saml (the OneLogin toolkit): SP metadata, AuthnRequests
(HTTP-Redirect binding) and the validation of the IdP's Response (HTTP-POST binding).

python3-saml runs in strict mode and does the XML-signature work: the signature is checked against
the tenant's configured IdP certificates only (never a certificate embedded in the message), the
signed element must be the Response or the one Assertion (a second Assertion anywhere in the
document, a Signature on any other element, duplicate IDs or a Reference that does not point at
its parent are refused: the XML-signature-wrapping attacks), SHA-1 is refused, and the document
must match the SAML protocol schema (no DTDs, no entities).

python3-saml is lenient where the Web Browser SSO profile is not, so ``validate`` adds, on the
signed assertion only (python3-saml's ``_query_assertion`` selects the element the signature
covers): the Response must answer *our* AuthnRequest (an unsolicited Response passes python3-saml
when it lacks ``InResponseTo``); an ``AudienceRestriction`` naming this SP must be present (an
absent one passes python3-saml); a bearer ``SubjectConfirmationData`` must name exactly our ACS
as ``Recipient`` (python3-saml only checks that the ACS is a substring), answer our request and
carry ``NotOnOrAfter``; a ``Destination`` must equal our ACS; and ``Conditions`` times are checked
with the deployment's clock skew (python3-saml's own allowance there is a process-wide 300 s,
which this does not change; it allows no skew on ``SubjectConfirmationData`` times, which are
minutes wide in practice).

Nothing here touches the database or HTTP: the caller passes the SP and IdP settings, and the
request facts that python3-saml would otherwise read from the request are derived from the
deployment's public URL, never from client headers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

# The longest ids and NameIDs stored (the replay table's and users.idp_subject's columns).
MAX_ID_LENGTH = 256


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


@dataclass(frozen=True, slots=True)
class AuthnRequest:
    id: str
    redirect_url: str


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
        """A new AuthnRequest and the IdP URL that carries it (HTTP-Redirect binding)."""
        settings = self._settings(sp, idp)
        request = OneLogin_Saml2_Authn_Request(settings)
        url = OneLogin_Saml2_Utils.redirect(
            idp.sso_url, {"SAMLRequest": request.get_request(), "RelayState": relay_state}
        )
        return AuthnRequest(id=request.get_id(), redirect_url=url)

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
                    "binding": Constants.BINDING_HTTP_REDIRECT,
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

        # python3-saml's own helper: the assertion the verified signature covers.
        assertion = response._query_assertion("")[0]
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
        _bearer_confirmation(response._query_assertion("")[0], sp, request_id, 0, now)
    except SamlRejected as exc:
        return exc.reason
    except Exception:
        return Rejection.INVALID_RESPONSE
    return Rejection.INVALID_RESPONSE
