from __future__ import annotations

from audit import models as audit_models  # noqa: F401  (registers the tables)
from auth import models  # noqa: F401  (registers the tables)
from chat import models as chat_models  # noqa: F401  (registers the tables)
from chat.debug import models as debug_models  # noqa: F401
from compliance import models as sar_models  # noqa: F401
from dlp import models as dlp_models  # noqa: F401
from gateway import models as gateway_models  # noqa: F401
from kernel.db import RegionalBase
from migrations.env_common import run_migrations
from retrieval import models as retrieval_models  # noqa: F401

run_migrations(RegionalBase.metadata)
