"""What boto3 raises when an AWS endpoint (KMS, STS, S3) answers with something that is not the
reply of the operation called: shared by the adapters that call AWS (``keys.adapters.aws``,
``residency.adapters.s3_objects``), which treat any of these as the service being unavailable.

botocore's parsers assume the reply has the shape of the operation's output and fail as Python
does when it has not: a list where an object belongs is an AttributeError, a number where a
string belongs a TypeError. Besides those they raise their own ResponseParserError, the XML
parser's ParseError (S3, STS), binascii.Error for a blob that is not base64 and
UnicodeDecodeError for a body that is not UTF-8 (both ValueErrors). Measured against a server on
127.0.0.1 serving such replies to boto3 1.44 (tests/integration/replies).
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

from botocore.parsers import ResponseParserError

UNPARSEABLE = (
    ResponseParserError,
    ParseError,
    ValueError,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
)
