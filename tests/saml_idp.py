"""A SAML identity provider built in the test: a throw-away RSA key and self-signed certificate,
real AuthnRequest decoding, and real XML-signed Responses (python3-saml's ``add_sign``, i.e.
xmlsec). Its metadata, shaped as Entra ID and Okta export theirs (``tests/fixtures/saml``), and
a real HTTP server on 127.0.0.1 that publishes it. Also the browser's side of the round trip
against the app (login, ACS post, cookies).
"""

from __future__ import annotations

import base64
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from tests.peers.static_http import StaticHttp
from tests.support.tenants import Api, TenantHandle

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
FIXTURES = Path(__file__).parent / "fixtures" / "saml"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_key_and_cert(
    common_name: str = "Bulwark Test IdP", key_size: int = 2048
) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Sp:
    """One tenant's SP, as its SAML configuration reports it."""

    slug: str
    entity_id: str
    acs_url: str


@dataclass
class Assertion:
    """Everything an IdP asserts; defaults make a valid login for ``sp`` answering ``request``."""

    name_id: str = field(default_factory=lambda: f"okta|{uuid.uuid4().hex[:12]}")
    name_id_format: str = PERSISTENT
    attributes: dict[str, list[str]] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"_a{uuid.uuid4().hex}")
    audience: str | None = None  # default: the SP's entity id; "": no AudienceRestriction
    recipient: str | None = None  # default: the SP's ACS
    destination: str | None = None  # default: the SP's ACS
    in_response_to: str | None = None
    response_answers: bool = True  # False: no InResponseTo on the Response element itself
    issuer: str | None = None
    not_before: timedelta = timedelta(minutes=-1)
    not_on_or_after: timedelta = timedelta(minutes=5)
    confirmation_not_on_or_after: timedelta = timedelta(minutes=5)
    session_not_on_or_after: timedelta | None = None


class TestIdp:
    __test__ = False  # not a test class

    def __init__(self, entity_id: str = "https://idp.example.test/saml/metadata") -> None:
        self.entity_id = entity_id
        self.sso_url = "https://idp.example.test/saml/sso"
        self.key_pem, self.cert_pem = new_key_and_cert()

    def config(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "idp_entity_id": self.entity_id,
            "sso_url": self.sso_url,
            "certificates": [self.cert_pem],
        }
        body.update(overrides)
        return body

    # Responses -----------------------------------------------------------------------------
    def assertion_xml(self, sp: Sp, a: Assertion, request_id: str | None) -> str:
        now = datetime.now(UTC)
        irt = a.in_response_to if a.in_response_to is not None else request_id
        irt_attr = f" InResponseTo={quoteattr(irt)}" if irt else ""
        session = (
            f" SessionNotOnOrAfter={quoteattr(saml_time(now + a.session_not_on_or_after))}"
            if a.session_not_on_or_after is not None
            else ""
        )
        attributes = "".join(
            f"<saml:Attribute Name={quoteattr(name)} "
            'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
            + "".join(
                f'<saml:AttributeValue xsi:type="xs:string">{escape(v)}</saml:AttributeValue>'
                for v in values
            )
            + "</saml:Attribute>"
            for name, values in a.attributes.items()
        )
        statement = f"<saml:AttributeStatement>{attributes}</saml:AttributeStatement>"
        restriction = (
            "<saml:AudienceRestriction>"
            f"<saml:Audience>{escape(a.audience or sp.entity_id)}</saml:Audience>"
            "</saml:AudienceRestriction>"
            if a.audience != ""
            else ""
        )
        return (
            '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'ID={quoteattr(a.id)} Version="2.0" IssueInstant="{saml_time(now)}">'
            f"<saml:Issuer>{escape(a.issuer or self.entity_id)}</saml:Issuer>"
            "<saml:Subject>"
            f"<saml:NameID Format={quoteattr(a.name_id_format)}>{escape(a.name_id)}</saml:NameID>"
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            "<saml:SubjectConfirmationData"
            f" NotOnOrAfter={quoteattr(saml_time(now + a.confirmation_not_on_or_after))}"
            f" Recipient={quoteattr(a.recipient or sp.acs_url)}{irt_attr}/>"
            "</saml:SubjectConfirmation>"
            "</saml:Subject>"
            f'<saml:Conditions NotBefore="{saml_time(now + a.not_before)}"'
            f' NotOnOrAfter="{saml_time(now + a.not_on_or_after)}">'
            f"{restriction}"
            "</saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{saml_time(now)}"'
            f' SessionIndex="_s{uuid.uuid4().hex}"{session}>'
            "<saml:AuthnContext><saml:AuthnContextClassRef>"
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            "</saml:AuthnContextClassRef></saml:AuthnContext>"
            "</saml:AuthnStatement>"
            f"{statement if a.attributes else ''}"
            "</saml:Assertion>"
        )

    def response_xml(self, sp: Sp, a: Assertion, request_id: str | None, assertion_xml: str) -> str:
        irt = a.in_response_to if a.in_response_to is not None else request_id
        irt_attr = f" InResponseTo={quoteattr(irt)}" if irt and a.response_answers else ""
        return (
            '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="_r{uuid.uuid4().hex}" Version="2.0" '
            f'IssueInstant="{saml_time(datetime.now(UTC))}" '
            f"Destination={quoteattr(a.destination or sp.acs_url)}{irt_attr}>"
            f"<saml:Issuer>{escape(a.issuer or self.entity_id)}</saml:Issuer>"
            "<samlp:Status>"
            '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
            "</samlp:Status>"
            f"{assertion_xml}"
            "</samlp:Response>"
        )

    def sign(self, xml: str, key_pem: str | None = None, cert_pem: str | None = None) -> str:
        signed = OneLogin_Saml2_Utils.add_sign(
            xml,
            key_pem or self.key_pem,
            cert_pem or self.cert_pem,
            sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
            digest_algorithm=OneLogin_Saml2_Constants.SHA256,
        )
        return signed.decode() if isinstance(signed, bytes) else str(signed)

    def response(
        self,
        sp: Sp,
        request_id: str | None,
        a: Assertion | None = None,
        *,
        sign_assertion: bool = True,
        sign_response: bool = False,
        key_pem: str | None = None,
        cert_pem: str | None = None,
    ) -> str:
        """A SAML Response as the XML text (see ``encode``)."""
        a = a or Assertion()
        assertion = self.assertion_xml(sp, a, request_id)
        if sign_assertion:
            assertion = self.sign(assertion, key_pem, cert_pem)
        response = self.response_xml(sp, a, request_id, _strip_declaration(assertion))
        if sign_response:
            response = self.sign(response, key_pem, cert_pem)
        return response

    def encoded(self, sp: Sp, request_id: str | None, a: Assertion | None = None, **kw: Any) -> str:
        return encode(self.response(sp, request_id, a, **kw))


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


# Metadata, as the IdPs publish it -------------------------------------------------------------
def certificate_body(pem: str) -> str:
    """The base64 DER of a PEM certificate: what ``ds:X509Certificate`` holds."""
    return "".join(line for line in pem.strip().splitlines() if "CERTIFICATE" not in line)


def entra_idp() -> TestIdp:
    """An IdP named as an Entra ID tenant names itself (its SAML entity id and SSO URL)."""
    tenant = uuid.uuid4()
    idp = TestIdp(entity_id=f"https://sts.windows.net/{tenant}/")
    idp.sso_url = f"https://login.microsoftonline.com/{tenant}/saml2"
    return idp


def okta_idp() -> TestIdp:
    """An IdP named as an Okta app integration names itself."""
    app = f"exk{uuid.uuid4().hex[:17]}"
    idp = TestIdp(entity_id=f"http://www.okta.com/{app}")
    idp.sso_url = (
        f"https://dev-{uuid.uuid4().int % 10**8}.okta.com/app/acme_bulwark_1/{app}/sso/saml"
    )
    return idp


def entra_metadata(idp: TestIdp, next_cert_pem: str) -> str:
    """``idp``'s federation metadata as Entra ID exports it during a key rollover (the current
    and the next signing certificate), signed with the current key as Entra signs it."""
    document = Template((FIXTURES / "entra_federationmetadata.xml").read_text()).substitute(
        document_id=uuid.uuid4(),
        entity_id=idp.entity_id,
        sso_url=idp.sso_url,
        wsfed_url=idp.sso_url.replace("/saml2", "/wsfed"),
        certificate=certificate_body(idp.cert_pem),
        next_certificate=certificate_body(next_cert_pem),
    )
    return idp.sign(document)


def okta_metadata(idp: TestIdp, *, certificates: list[str] | None = None) -> str:
    """``idp``'s metadata as Okta exports it (one signing certificate, unless told others)."""
    document = Template((FIXTURES / "okta_metadata.xml").read_text()).substitute(
        entity_id=idp.entity_id,
        sso_url=idp.sso_url,
        certificate=certificate_body(idp.cert_pem),
    )
    for extra in certificates or []:
        descriptor = document.index("<md:NameIDFormat>")
        document = (
            document[:descriptor] + '<md:KeyDescriptor use="signing"><ds:KeyInfo '
            'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>'
            + certificate_body(extra)
            + "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            + document[descriptor:]
        )
    return document


class MetadataServer(StaticHttp):
    """The IdP's metadata endpoint: every GET answered with the document the test serves."""

    def url(self, path: str = "/metadata") -> str:
        return super().url(path)

    def serve(self, body: str, status: int = 200, **headers: str) -> None:
        self.default = (
            status,
            {"Content-Type": "application/samlmetadata+xml", **headers},
            body.encode(),
        )

    def __enter__(self) -> MetadataServer:
        super().__enter__()
        return self


def _strip_declaration(xml: str) -> str:
    return xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml


# XML-signature-wrapping attacks on a validly signed response ------------------------------------
def wrap_injected_assertion(signed_response: str, evil: str) -> str:
    """An unsigned assertion (``evil``) inserted before the genuine signed one."""
    root = etree.fromstring(signed_response.encode())
    genuine = root.find("saml:Assertion", NS)
    assert genuine is not None
    genuine.addprevious(etree.fromstring(evil.encode()))
    return etree.tostring(root).decode()


def wrap_moved_assertion(signed_response: str, evil: str) -> str:
    """The genuine signed assertion moved into ``samlp:Extensions`` (where a naive verifier still
    finds its signature valid) and an unsigned ``evil`` one put where the SP reads the user."""
    root = etree.fromstring(signed_response.encode())
    genuine = root.find("saml:Assertion", NS)
    assert genuine is not None
    root.remove(genuine)
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    extensions.append(genuine)
    issuer = root.find("saml:Issuer", NS)
    assert issuer is not None
    issuer.addnext(extensions)
    root.append(etree.fromstring(evil.encode()))
    return etree.tostring(root).decode()


def wrap_transplanted_signature(signed_response: str, evil: str) -> str:
    """The genuine assertion replaced by ``evil``, which carries the genuine signature (whose
    Reference still points at the genuine assertion's id)."""
    root = etree.fromstring(signed_response.encode())
    genuine = root.find("saml:Assertion", NS)
    assert genuine is not None
    signature = genuine.find("ds:Signature", NS)
    assert signature is not None
    forged = etree.fromstring(evil.encode())
    issuer = forged.find("saml:Issuer", NS)
    assert issuer is not None
    issuer.addnext(signature)
    genuine.addprevious(forged)
    root.remove(genuine)
    return etree.tostring(root).decode()


def tamper_name_id(signed_response: str, name_id: str) -> str:
    root = etree.fromstring(signed_response.encode())
    node = root.find("saml:Assertion/saml:Subject/saml:NameID", NS)
    assert node is not None
    node.text = name_id
    return etree.tostring(root).decode()


# The browser -----------------------------------------------------------------------------------
def set_cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Each Set-Cookie of a response: name -> {value, and its attributes (lower-case)}."""
    cookies: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attributes = {k: v for k, v in morsel.items() if v}
            lowered = header.lower()
            attributes["httponly"] = "httponly" in lowered
            attributes["secure"] = "; secure" in lowered
            cookies[name] = {"value": morsel.value, **attributes}
    return cookies


@dataclass
class Login:
    """A login started at the app: the AuthnRequest the browser carries to the IdP."""

    request_id: str
    relay_state: str | None
    state_cookie: str
    authn_request: etree._Element
    response: httpx.Response


async def sp_of(api: Api, tenant: TenantHandle) -> Sp:
    config = await api.client.get("/v1/admin/sso/saml", headers=tenant.admin)
    assert config.status_code == 200, config.text
    sp = config.json()["service_provider"]
    return Sp(tenant.slug, sp["entity_id"], sp["acs_url"])


async def configure(
    api: Api, tenant: TenantHandle, idp: TestIdp, **overrides: Any
) -> tuple[Sp, dict[str, Any]]:
    saved = await api.client.put(
        "/v1/admin/sso/saml", json=idp.config(**overrides), headers=tenant.admin
    )
    assert saved.status_code == 200, saved.text
    sp = saved.json()["service_provider"]
    return Sp(tenant.slug, sp["entity_id"], sp["acs_url"]), dict(saved.json())


async def start_login(api: Api, slug: str, return_to: str | None = None) -> Login:
    params = {"return_to": return_to} if return_to is not None else {}
    response = await api.client.get(
        f"/auth/{slug}/saml/login", params=params, follow_redirects=False
    )
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    request = etree.fromstring(xml)
    return Login(
        request_id=request.get("ID"),
        relay_state=query.get("RelayState", [None])[0],
        state_cookie=set_cookies(response)["bulwark_saml_state"]["value"],
        authn_request=request,
        response=response,
    )


async def post_acs(
    api: Api,
    slug: str,
    saml_response: str,
    *,
    state: str | None,
    relay_state: str | None = None,
) -> httpx.Response:
    form = {"SAMLResponse": saml_response}
    if relay_state is not None:
        form["RelayState"] = relay_state
    headers = {"Cookie": f"bulwark_saml_state={state}"} if state else {}
    return await api.client.post(
        f"/auth/{slug}/saml/acs", data=form, headers=headers, follow_redirects=False
    )


def session_cookie(response: httpx.Response) -> dict[str, str]:
    """The Cookie header a browser sends after this ACS response."""
    return {"Cookie": f"bulwark_session={set_cookies(response)['bulwark_session']['value']}"}
