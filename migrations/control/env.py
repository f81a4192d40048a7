from __future__ import annotations

from kernel.db import ControlBase
from migrations.env_common import run_migrations
from tenants import models  # noqa: F401  (registers the tables)

run_migrations(ControlBase.metadata)
