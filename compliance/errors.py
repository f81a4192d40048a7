"""Subject-access request failures as problem details."""

from __future__ import annotations

from kernel.errors import Conflict, NotFound


class SubjectNotFound(NotFound):
    code = "subject_not_found"
    title = "Subject not found"

    def __init__(self) -> None:
        super().__init__("No person with that reference in this tenant.")


class SarNotFound(NotFound):
    code = "sar_not_found"
    title = "Subject-access request not found"

    def __init__(self) -> None:
        super().__init__("No such subject-access request in this tenant.")


class SarExportUnavailable(Conflict):
    code = "sar_export_unavailable"
    title = "No export for this request"

    def __init__(self) -> None:
        super().__init__("An export exists for a finished access request only.")
