"""Residency failures. Each names the region so an operator can see which data plane is at fault."""

from __future__ import annotations

from kernel.errors import InvalidInput, ServiceUnavailable


class RegionUnavailable(ServiceUnavailable):
    """A tenant is pinned to a region this deployment does not (or no longer) configure."""

    code = "region_unavailable"
    title = "Region unavailable"

    def __init__(self, region: str, reason: str = "is not configured in this deployment") -> None:
        super().__init__(f"Region {region!r} {reason}.", region=region)


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "Database unavailable"

    def __init__(self, region: str) -> None:
        super().__init__(f"The database of region {region!r} cannot be reached.", region=region)


class UnknownRegion(InvalidInput):
    """Input names a region that is not configured (e.g. creating a tenant in ``mars``)."""

    code = "unknown_region"
    title = "Unknown region"

    def __init__(self, region: str, known: list[str]) -> None:
        super().__init__(
            f"Region {region!r} is not configured; choose one of {', '.join(known)}.",
            region=region,
            known_regions=known,
        )
