from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from auth.context import system_context
from kernel.settings import Settings, embedded_region
from kernel.tenancy import TenantRoute
from residency.errors import RegionUnavailable, UnknownRegion
from residency.registry import RegionRegistry


def registry(tmp_path: Path) -> RegionRegistry:
    eu = embedded_region(tmp_path, "eu")
    eu["models"] = [
        {
            "name": "eu-small",
            "tier": "small",
            "base_url": "http://127.0.0.1:1/v1",
            "model": "smollm2",
        }
    ]
    us = embedded_region(tmp_path, "us")
    us["vector_store"] = ""
    us["models"] = []  # the embedded default has a local small tier; this region has none
    return RegionRegistry.from_settings(Settings(data_dir=tmp_path, regions={"eu": eu, "us": us}))


def ctx(region: str):  # type: ignore[no-untyped-def]
    return system_context(TenantRoute(uuid.uuid4(), "t", region, "active"))


def test_resolves_only_the_tenants_own_region(tmp_path: Path) -> None:
    regions = registry(tmp_path)
    assert regions.for_tenant(ctx("eu")).name == "eu"
    assert regions.vector_store_for(ctx("eu")).endswith("regions/eu/vectors")
    assert [m.name for m in regions.model_endpoints_for(ctx("eu"), "small")] == ["eu-small"]


def test_missing_resources_and_regions_fail_closed_naming_the_region(tmp_path: Path) -> None:
    regions = registry(tmp_path)
    with pytest.raises(RegionUnavailable, match="'us' has no model endpoints"):
        regions.model_endpoints_for(ctx("us"))
    with pytest.raises(RegionUnavailable, match="'eu' has no frontier model endpoints"):
        regions.model_endpoints_for(ctx("eu"), "frontier")
    with pytest.raises(RegionUnavailable, match="'us' has no vector store"):
        regions.vector_store_for(ctx("us"))
    with pytest.raises(RegionUnavailable, match="'mars' is not configured"):
        regions.for_tenant(ctx("mars"))
    with pytest.raises(UnknownRegion):
        regions.validate_new_region("mars")
