from __future__ import annotations

from kernel.errors import AppError, Conflict, InvalidInput


class InvalidActorFilter(AppError):
    code = "invalid_actor_filter"
    title = "Invalid actor filter"

    def __init__(self) -> None:
        super().__init__(
            "Filter by a pseudonym (ps_...), a user ('user:<uuid>'), 'operator' or 'system'."
        )


class InvalidTimeFilter(InvalidInput):
    code = "invalid_time_filter"
    title = "Invalid time filter"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a valid date and time.", parameter=name)


class AuditChainBroken(Conflict):
    code = "audit_chain_broken"
    title = "Audit chain broken"

    def __init__(self) -> None:
        super().__init__(
            "The stored chain head does not match the last event; run the audit verification."
        )
