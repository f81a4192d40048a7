from __future__ import annotations

from kernel.errors import AppError, Conflict, Forbidden, NotFound


class TenantNotFound(NotFound):
    code = "tenant_not_found"
    title = "Tenant not found"

    def __init__(self) -> None:
        super().__init__("No such tenant.")


class TenantSlugTaken(Conflict):
    code = "tenant_slug_taken"
    title = "Tenant slug taken"

    def __init__(self, slug: str) -> None:
        super().__init__(f"A tenant with slug {slug!r} already exists.", slug=slug)


class TenantSuspended(Forbidden):
    code = "tenant_suspended"
    title = "Tenant suspended"

    def __init__(self) -> None:
        super().__init__("This tenant is suspended; contact the platform operator.")


class TenantDeleted(Forbidden):
    code = "tenant_deleted"
    title = "Tenant deleted"

    def __init__(self) -> None:
        super().__init__(
            "This tenant has been deleted; its keys are destroyed after the grace period."
        )


class TenantAlreadyDeleted(Conflict):
    code = "tenant_deleted"
    title = "Tenant deleted"

    def __init__(self) -> None:
        super().__init__("This tenant is deleted and can no longer be changed.")


class TenantGone(AppError):
    status = 410
    code = "tenant_gone"
    title = "Tenant deleted"

    def __init__(self, **schedule: str | None) -> None:
        super().__init__(
            "This tenant was deleted; its keys are shredded after the grace period.", **schedule
        )
