"""Reading an IdP's metadata (``auth.adapters.saml.parse_idp_metadata``): the shapes Entra ID and
Okta export, documents that describe several entities, the keys that are (not) trusted, and the
XML attacks a metadata document can carry."""

from __future__ import annotations

import pytest

from auth.adapters.saml import (
    MetadataProblem,
    MetadataRejected,
    SsoBinding,
    parse_idp_metadata,
)
from tests.saml_idp import (
    certificate_body,
    entra_idp,
    entra_metadata,
    new_key_and_cert,
    okta_idp,
    okta_metadata,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_, CERT = new_key_and_cert("Metadata unit IdP")
_, OTHER_CERT = new_key_and_cert("Metadata unit IdP, encryption")


def key(pem: str, use: str | None = "signing") -> str:
    use_attribute = f' use="{use}"' if use else ""
    return (
        f'<KeyDescriptor{use_attribute}><KeyInfo xmlns="{DS}"><X509Data><X509Certificate>'
        f"{certificate_body(pem)}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>"
    )


def entity(
    entity_id: str = "https://idp.example.test/metadata",
    *,
    keys: str | None = None,
    sso: tuple[tuple[str, str], ...] = ((REDIRECT, "https://idp.example.test/sso"),),
    attributes: str = "",
    role: str = "IDPSSODescriptor",
) -> str:
    services = "".join(f'<SingleSignOnService Binding="{b}" Location="{u}"/>' for b, u in sso)
    if role != "IDPSSODescriptor":
        services = (
            f'<AssertionConsumerService Binding="{POST}" Location="https://sp/acs" index="0"/>'
        )
    return (
        f'<EntityDescriptor entityID="{entity_id}">'
        f'<{role}{attributes} protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key(CERT) if keys is None else keys}{services}</{role}></EntityDescriptor>"
    )


def document(*entities: str) -> str:
    if len(entities) == 1:
        return entities[0].replace("<EntityDescriptor ", f'<EntityDescriptor xmlns="{MD}" ', 1)
    return f'<EntitiesDescriptor xmlns="{MD}">{"".join(entities)}</EntitiesDescriptor>'


def rejected(xml: str | bytes, entity_id: str | None = None) -> MetadataRejected:
    with pytest.raises(MetadataRejected) as refused:
        parse_idp_metadata(xml, entity_id)
    return refused.value


def test_entra_id_federation_metadata() -> None:
    """Signed, WS-Federation RoleDescriptors first (with keys of their own), two signing
    certificates during a rollover, Redirect and POST at one URL."""
    idp = entra_idp()
    _, next_cert = new_key_and_cert("Entra next")
    metadata = parse_idp_metadata(entra_metadata(idp, next_cert))
    assert metadata.entity_id == idp.entity_id
    assert metadata.entity_id.startswith("https://sts.windows.net/")
    assert (metadata.sso_url, metadata.sso_binding) == (idp.sso_url, SsoBinding.REDIRECT)
    assert metadata.certificates == (idp.cert_pem, next_cert)


def test_okta_metadata() -> None:
    """md: prefixes, POST listed before Redirect (Redirect is chosen), one certificate."""
    idp = okta_idp()
    metadata = parse_idp_metadata(okta_metadata(idp).encode())
    assert metadata.entity_id == idp.entity_id
    assert metadata.entity_id.startswith("http://www.okta.com/exk")
    assert (metadata.sso_url, metadata.sso_binding) == (idp.sso_url, SsoBinding.REDIRECT)
    assert metadata.certificates == (idp.cert_pem,)


def test_post_only_sso_and_the_keys_that_verify_signatures() -> None:
    keys = key(OTHER_CERT, "encryption") + key(CERT, None) + key(CERT, "signing")
    metadata = parse_idp_metadata(
        document(entity(keys=keys, sso=((POST, "https://idp.example.test/post"),)))
    )
    assert (metadata.sso_url, metadata.sso_binding) == (
        "https://idp.example.test/post",
        "HTTP-POST",
    )
    # A key without ``use`` serves both purposes; encryption-only keys are skipped; no doubles.
    assert metadata.certificates == (CERT,)


def test_documents_that_describe_several_entities() -> None:
    first, second = "https://idp-one.example.test/", "https://idp-two.example.test/"
    sp = entity("https://sp.example.test/", role="SPSSODescriptor")
    aggregate = document(sp, entity(first), entity(second, sso=((POST, "https://two/sso"),)))
    refused = rejected(aggregate)
    assert refused.problem is MetadataProblem.ENTITY_ID_REQUIRED
    assert refused.entity_ids == (first, second)  # the SP is not offered
    assert parse_idp_metadata(aggregate, second).sso_url == "https://two/sso"
    assert rejected(aggregate, "https://sp.example.test/").problem is (
        MetadataProblem.UNKNOWN_ENTITY_ID
    )
    # One IdP among SPs needs no entity_id.
    assert parse_idp_metadata(document(sp, entity(first))).entity_id == first
    # The same entity id twice is ambiguous.
    assert rejected(document(entity(first), entity(first))).problem is MetadataProblem.MALFORMED


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        ("not xml at all", MetadataProblem.MALFORMED),
        ("", MetadataProblem.MALFORMED),
        (f'<EntityDescriptor xmlns="{MD}" entityID="x"', MetadataProblem.MALFORMED),
        (
            document(entity(role="SPSSODescriptor")),
            MetadataProblem.NO_IDENTITY_PROVIDER,
        ),
        (
            document(entity(sso=(("urn:oasis:names:tc:SAML:2.0:bindings:SOAP", "https://x"),))),
            MetadataProblem.NO_SSO_BINDING,
        ),
        (document(entity(sso=())), MetadataProblem.NO_SSO_BINDING),
        (document(entity(keys=key(CERT, "encryption"))), MetadataProblem.NO_SIGNING_CERTIFICATE),
        (document(entity(keys="")), MetadataProblem.NO_SIGNING_CERTIFICATE),
        (
            document(entity(attributes=' WantAuthnRequestsSigned="true"')),
            MetadataProblem.SIGNED_REQUESTS_REQUIRED,
        ),
        (
            document(entity("https://idp.example.test/it's")),
            MetadataProblem.UNSUPPORTED_ENTITY_ID,
        ),
    ],
)
def test_unusable_documents(xml: str, problem: MetadataProblem) -> None:
    assert rejected(xml).problem is problem


def test_entity_expansion_is_refused() -> None:
    """Billion laughs: nine levels of ten references; refused, never expanded."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    xml = f"<!DOCTYPE EntityDescriptor [{entities}]>" + document(entity("&lol9;"))
    assert rejected(xml).problem is MetadataProblem.MALFORMED


def test_external_entities_are_refused() -> None:
    """XXE: an entity naming a file is refused, its content never read into the document
    (``tests/integration/test_saml_metadata.py`` shows that URLs are not fetched either)."""
    xml = '<!DOCTYPE EntityDescriptor [<!ENTITY x SYSTEM "file:///etc/hostname">]>' + document(
        entity("https://idp.example.test/&x;")
    )
    assert rejected(xml).problem is MetadataProblem.MALFORMED
