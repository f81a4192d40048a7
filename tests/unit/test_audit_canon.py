"""The one canonical JSON (``audit.canon``): RFC 8785 as the RFC's own examples spell it, what it
refuses, how a recorded version picks the encoding, and the outside verifier's independence."""

from __future__ import annotations

import ast
import json
import struct
import uuid
from pathlib import Path

import pytest

from audit.canon import (
    CANON,
    JCS,
    LEGACY,
    CanonError,
    canonical_json,
    encode_recorded,
    version_of,
    versioned,
)

ROOT = Path(__file__).resolve().parents[2]


RFC_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_OUTPUT = r"""{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"""  # noqa: E501


def test_rfc8785_section_3_2_2_example() -> None:
    # The RFC's example input, parsed as any JSON reader would, gives the RFC's output.
    assert canonical_json(json.loads(RFC_INPUT)) == RFC_OUTPUT.encode("utf-8")


def test_keys_sort_by_utf16_code_units_as_in_rfc8785_section_3_2_3() -> None:
    names = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = canonical_json({name: index for index, name in enumerate(names)})
    order = [name for name in json.loads(encoded)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    # Non-ASCII is written as UTF-8, not escaped.
    assert "\u00f6".encode() in encoded and b"\\u" not in encoded
    # Python's own sort (code points) puts the emoji last: the legacy encoding differs here.
    legacy = encode_recorded({name: index for index, name in enumerate(names)})
    assert [name for name in json.loads(legacy)][-1] == "\U0001f600"
    assert legacy != encoded


@pytest.mark.parametrize(
    ("bits", "spelling"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),  # minus zero
        ("0000000000000001", "5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ],
)
def test_numbers_as_rfc8785_appendix_b_spells_them(bits: str, spelling: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical_json(number) == spelling.encode()


def test_integers_up_to_2_53_minus_1_and_no_further() -> None:
    assert canonical_json([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"
    for beyond in (2**53, -(2**53), 10**30):
        with pytest.raises(CanonError, match="not canonical JSON"):
            canonical_json({"n": beyond})
    assert canonical_json({"n": str(10**30)}) == b'{"n":"1000000000000000000000000000000"}'


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        "\ud800",  # a lone surrogate is not Unicode text
        {1: "non-string key"},
        uuid.UUID(int=1),
        b"bytes",
    ],
    ids=["nan", "inf", "-inf", "surrogate", "int-key", "uuid", "bytes"],
)
def test_what_rfc8785_cannot_encode_is_refused(value: object) -> None:
    with pytest.raises(CanonError):
        canonical_json({"v": value})


def test_a_recorded_version_picks_the_encoding() -> None:
    document = {"b": 1.0, "a": "é"}
    assert version_of(document) == LEGACY
    # Legacy: Python's json.dumps as Bulwark wrote it before (1.0 keeps its ".0").
    assert encode_recorded(document) == '{"a":"é","b":1.0}'.encode()
    current = versioned(document)
    assert current[CANON] == JCS == version_of(current)
    assert encode_recorded(current) == '{"a":"é","b":1,"canon":2}'.encode()
    for unknown in (1, 3, "2", True, None):
        with pytest.raises(CanonError, match="unknown canon"):
            encode_recorded({**document, CANON: unknown})
    with pytest.raises(CanonError, match="reserved"):
        versioned(current)


def test_the_legacy_encoding_still_reads_what_it_wrote() -> None:
    # Integers beyond 2**53 were accepted before: old rows holding one still encode.
    assert encode_recorded({"n": 2**53 + 1}) == b'{"n":9007199254740993}'
    with pytest.raises(CanonError):
        encode_recorded({"n": float("nan")})


def test_the_outside_verifier_uses_nothing_of_bulwark() -> None:
    tree = ast.parse((ROOT / "tests" / "outsider.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "base64",
        "collections",
        "hashlib",
        "json",
        "typing",
        "rfc8785",
        "cryptography",
    }, imported
