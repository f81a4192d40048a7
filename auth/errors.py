from __future__ import annotations

from typing import Any, ClassVar

from kernel.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "Invalid credentials"

    def __init__(
        self, detail: str = "The credential is missing, malformed, revoked or unknown."
    ) -> None:
        super().__init__(detail)


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"

    def __init__(self) -> None:
        super().__init__("No such user in this tenant.")


class GroupNotFound(NotFound):
    code = "group_not_found"
    title = "Group not found"

    def __init__(self) -> None:
        super().__init__("No such group in this tenant.")


class MembershipNotFound(NotFound):
    code = "membership_not_found"
    title = "Membership not found"

    def __init__(self) -> None:
        super().__init__("That user is not a member of that group.")


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"

    def __init__(self) -> None:
        super().__init__("No such active API key in this tenant.")


class EmailTaken(Conflict):
    code = "email_taken"
    title = "Email taken"

    def __init__(self) -> None:
        super().__init__("A user with this email already exists in this tenant.")


class GroupNameTaken(Conflict):
    code = "group_name_taken"
    title = "Group name taken"

    def __init__(self) -> None:
        super().__init__("A group with this name already exists in this tenant.")


class NotASession(InvalidInput):
    code = "not_a_session"
    title = "Not a session"

    def __init__(self) -> None:
        super().__init__("Logout ends a Bulwark session; this request was not made with one.")


class SamlNotConfigured(NotFound):
    code = "saml_not_configured"
    title = "SAML not configured"

    def __init__(self) -> None:
        super().__init__("This tenant has no enabled SAML identity provider.")


class SamlConfigInvalid(InvalidInput):
    code = "saml_config_invalid"
    title = "Invalid SAML configuration"


class SamlCertificateInvalid(InvalidInput):
    code = "saml_certificate_invalid"
    title = "Invalid IdP certificate"


class SamlUnsignedConfiguration(InvalidInput):
    code = "saml_unsigned_configuration"
    title = "Unsigned SAML configuration"

    def __init__(self) -> None:
        super().__init__(
            "Require signed assertions, signed responses or both: an unsigned SAML response "
            "proves nothing."
        )


class SamlMetadataInvalid(InvalidInput):
    """An IdP metadata document that cannot configure a login. Subclasses name the reason."""

    code = "saml_metadata_invalid"
    title = "Unusable SAML metadata"
    message: ClassVar[str] = "The metadata cannot configure a SAML login."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.message, **extra)


class SamlMetadataMalformed(SamlMetadataInvalid):
    code = "saml_metadata_malformed"
    message = (
        "The metadata is not a well-formed SAML metadata document (DTDs and entity declarations "
        "are refused, and each entity id may appear once)."
    )


class SamlMetadataTooLarge(SamlMetadataInvalid):
    code = "saml_metadata_too_large"
    message = "The metadata document is larger than 1 MiB."


class SamlMetadataNoIdp(SamlMetadataInvalid):
    code = "saml_metadata_no_idp"
    message = "The metadata describes no SAML identity provider (no IDPSSODescriptor)."


class SamlMetadataEntityIdRequired(SamlMetadataInvalid):
    code = "saml_metadata_entity_id_required"
    message = "The metadata describes several identity providers: name one with entity_id."


class SamlMetadataUnknownEntityId(SamlMetadataInvalid):
    code = "saml_metadata_unknown_entity_id"
    message = "No identity provider in the metadata has that entity_id."


class SamlMetadataNoSsoBinding(SamlMetadataInvalid):
    code = "saml_metadata_no_sso_binding"
    message = (
        "The identity provider offers no SingleSignOnService with the HTTP-Redirect or "
        "HTTP-POST binding."
    )


class SamlMetadataNoSigningCertificate(SamlMetadataInvalid):
    code = "saml_metadata_no_signing_certificate"
    message = "The identity provider publishes no signing certificate (encryption keys are not)."


class SamlMetadataUnsupported(SamlMetadataInvalid):
    code = "saml_metadata_unsupported"
    message = "The identity provider asks for something Bulwark does not do."


class SamlMetadataUrlMissing(Conflict):
    code = "saml_metadata_url_missing"
    title = "No metadata URL"

    def __init__(self) -> None:
        super().__init__(
            "These SAML settings were not imported from a metadata URL: import a document or "
            "a URL first."
        )


class SamlMetadataUnavailable(ServiceUnavailable):
    code = "saml_metadata_unavailable"
    title = "SAML metadata unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "The identity provider's metadata URL could not be read now; the stored settings "
            "are unchanged.",
            reason=reason,
        )


class SamlLoginRejected(Unauthenticated):
    """A SAML login refused. Subclasses name the reason; the detail never echoes the response."""

    code = "saml_invalid_response"
    title = "SAML login refused"
    message = "The SAML response is malformed or breaks the Web Browser SSO profile."

    def __init__(self) -> None:
        super().__init__(self.message)


class SamlInvalidResponse(SamlLoginRejected):
    pass


class SamlInvalidSignature(SamlLoginRejected):
    code = "saml_invalid_signature"
    message = (
        "The SAML response is not signed as required by a configured IdP certificate, or its "
        "signed content was altered or moved."
    )


class SamlWrongAudience(SamlLoginRejected):
    code = "saml_wrong_audience"
    message = "The SAML assertion is not addressed to this tenant's service provider."


class SamlWrongDestination(SamlLoginRejected):
    code = "saml_wrong_destination"
    message = "The SAML response was sent to another assertion consumer service."


class SamlWrongIssuer(SamlLoginRejected):
    code = "saml_wrong_issuer"
    message = "The SAML response was not issued by this tenant's identity provider."


class SamlExpired(SamlLoginRejected):
    code = "saml_expired"
    message = "The SAML assertion is expired or not yet valid."


class SamlReplayed(SamlLoginRejected):
    code = "saml_replayed"
    message = "This SAML assertion was already used."


class SamlUnsolicitedResponse(SamlLoginRejected):
    code = "saml_unsolicited_response"
    message = "The SAML response does not answer the login request this browser started."


class SamlInvalidState(SamlLoginRejected):
    code = "saml_invalid_state"
    message = "No login was started from this browser, or it took too long; sign in again."


class SamlIdpError(SamlLoginRejected):
    code = "saml_idp_error"
    message = "The identity provider did not authenticate the user."


class SamlMissingAttribute(SamlLoginRejected):
    code = "saml_missing_attribute"
    message = "The SAML assertion carries no usable email address for the user."
