"""Field constraints shared by the API schemas of several packages.

Explicit code-point classes rather than \\s / \\S: Python's and ECMAScript's whitespace sets
differ, and the OpenAPI document must promise exactly what the server enforces.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# Printable text: no control characters (PostgreSQL refuses NUL), at least one visible character.
VISIBLE = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f]*$"
# Free text people type or paste (a chat message, a search): as VISIBLE, but tabs and line
# breaks are text too; other control characters are still refused.
TEXT = (
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\x00-\x20\x7f-\x9f]"
    r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
)
# ABAC attribute names and values (users' attributes, documents' ACLs).
AttributeKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
AttributeValue = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{1,128}$")]
