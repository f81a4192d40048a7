"""Settings for a deployment whose stores and KMS are AWS (moto_server on 127.0.0.1; the
``moto_endpoint`` and ``aws_env`` fixtures are in ``tests/integration/conftest.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from tests.support.deployments import base_settings

AWS_REGIONS = {"eu": "eu-west-1", "us": "us-west-2"}


def aws_settings(data_dir: Path, endpoint: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    regions: dict[str, Any] = {}
    for name, aws_region in AWS_REGIONS.items():
        root = data_dir / "regions" / name
        regions[name] = {
            "database_url": f"sqlite+aiosqlite:///{root / 'bulwark.db'}",
            "vector_store": str(root / "vectors"),
            "object_store": f"s3://bulwark-{name}-{suffix}",
            "object_store_region": aws_region,
            "object_store_endpoint_url": endpoint,
            "kms": {"provider": "aws-kms", "aws_region": aws_region, "endpoint_url": endpoint},
        }
    return Settings(**base_settings(data_dir, regions=regions))
