"""DLP failures. Each names entity types or injection kinds, never the offending text."""

from __future__ import annotations

from collections.abc import Iterable

from kernel.errors import InvalidInput


class InvalidDlpPolicy(InvalidInput):
    code = "invalid_dlp_policy"
    title = "Invalid DLP policy"


class PersonalDataBlocked(InvalidInput):
    """The tenant's policy blocks these entity types in this direction; nothing was stored."""

    code = "personal_data_blocked"
    title = "Personal data blocked"

    def __init__(self, entity_types: Iterable[str]) -> None:
        types = sorted(set(entity_types))
        super().__init__(
            "The tenant's data-loss policy does not allow these kinds of personal data here: "
            f"{', '.join(types)}. Remove them and try again.",
            entity_types=types,
        )


class PromptInjectionRefused(InvalidInput):
    """The message reads as an attempt to take over the model's instructions."""

    code = "prompt_injection_refused"
    title = "Message refused"

    def __init__(self, kinds: Iterable[str]) -> None:
        found = sorted(set(kinds))
        super().__init__(
            "The message was refused: it reads as an attempt to override the assistant's "
            f"instructions ({', '.join(found)}).",
            injection_kinds=found,
        )
