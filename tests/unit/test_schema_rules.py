"""The rules the OpenAPI document states as JSON Schema are the rules the server applies: each
pattern or rule between fields is compared here with the code that enforces it, over every
case (or every code point) where that is finite, and over generated cases where it is not."""

from __future__ import annotations

import itertools
import re
import sys
from typing import Any, get_args

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onelogin.saml2.settings import validate_url

from auth.saml import MAX_ATTRIBUTE_NAME, MAX_PEM_LENGTH
from auth.schemas import MAX_ATTRIBUTE_NAME_CHARS, MAX_PEM_CHARS, SamlUrl
from dlp.policies import HOST, MAX_HOST_LENGTH
from dlp.schemas import Term
from gateway.admin import check_model_policy
from gateway.schemas import ModelPolicyBody, Tier
from kernel.errors import InvalidInput

TIERS = get_args(Tier)


def _meta(annotated: Any) -> msgspec.Meta:
    return next(m for m in get_args(annotated) if isinstance(m, msgspec.Meta))


def _subsets() -> list[list[str] | None]:
    return [None, *(list(c) for n in range(4) for c in itertools.combinations(TIERS, n))]


def test_model_policy_schema_allows_exactly_the_policies_the_service_accepts() -> None:
    schema = {"type": "object", **ModelPolicyBody.json_schema_extra}
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    seen = {True: 0, False: 0}
    for allowed, forbidden, pinned, fallback in itertools.product(
        _subsets(), _subsets(), (None, *TIERS), (None, *TIERS)
    ):
        body = {"allowed": allowed, "forbidden": forbidden, "pinned": pinned, "fallback": fallback}
        try:
            check_model_policy(msgspec.convert(body, ModelPolicyBody))
            accepted = True
        except InvalidInput:
            accepted = False
        assert validator.is_valid(body) is accepted, body
        # Absent and null are the same to the service; to the document too.
        present = {k: v for k, v in body.items() if v is not None}
        assert validator.is_valid(present) is accepted, present
        seen[accepted] += 1
    assert seen[True] and seen[False]


def test_term_pattern_is_python_strip() -> None:
    """A DLP term needs a character ``str.strip`` keeps (the service's own check)."""
    pattern = re.compile(_meta(Term).pattern or "")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(pattern.search(char)) is bool(char.strip()), hex(code)


def test_schema_limits_are_the_services_limits() -> None:
    assert MAX_PEM_CHARS == MAX_PEM_LENGTH
    assert MAX_ATTRIBUTE_NAME_CHARS == MAX_ATTRIBUTE_NAME
    for host in ("example.com", "*.example.com", "a-1.b", "x" * 63):
        assert HOST.match(host) and len(host) <= MAX_HOST_LENGTH


SSO_URL = re.compile(_meta(SamlUrl).pattern or "")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(SSO_URL, fullmatch=True))
def test_every_sso_url_the_document_allows_passes_the_saml_toolkit(url: str) -> None:
    assert validate_url(url, allow_single_label_domain=True), url


@pytest.mark.parametrize(
    ("url", "document", "toolkit"),
    [
        ("https://idp.example/sso", True, True),
        ("http://keycloak:8080/realms/acme/protocol/saml", True, True),
        ("https://10.0.0.7/sso?tenant=acme", True, True),
        ("https://[::1]:8443/sso", True, True),
        ("https://idp.example/sso#top", True, True),
        # The toolkit's own refusals, which used to be 422 after a schema-valid request.
        ("https://-/sso", False, False),
        ("https://a/sso", False, False),
        ("https://idp.example/has space", False, False),
        # Characters the SP's XML would carry unescaped: refused although the toolkit takes them.
        ("https://idp.example/sso?a=1&b=2", False, True),
    ],
)
def test_sso_urls(url: str, document: bool, toolkit: bool) -> None:
    assert bool(SSO_URL.search(url)) is document
    assert validate_url(url, allow_single_label_domain=True) is toolkit
