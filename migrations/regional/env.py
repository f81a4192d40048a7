from __future__ import annotations

from app.chat import models as chat_models  # noqa: F401  (registers the tables)
from app.db import RegionalBase
from app.debug import models as debug_models  # noqa: F401
from audit import models as audit_models  # noqa: F401  (registers the tables)
from audit.sar import models as sar_models  # noqa: F401
from auth import models  # noqa: F401  (registers the tables)
from dlp import models as dlp_models  # noqa: F401
from gateway import models as gateway_models  # noqa: F401
from migrations.env_common import run_migrations
from retrieval import models as retrieval_models  # noqa: F401

run_migrations(RegionalBase.metadata)
