"""Debug switch failures as problem details."""

from __future__ import annotations

from kernel.errors import Conflict


class RawContentDebugNotAllowed(Conflict):
    code = "raw_content_debug_not_allowed"
    title = "Raw-content debugging is not allowed"

    def __init__(self) -> None:
        super().__init__(
            "This deployment does not allow raw-content debug logging "
            "(observability.allow_raw_content_debug is off)."
        )
