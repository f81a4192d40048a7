"""Vector-store adapters: the only code that imports ``qdrant_edge`` or ``qdrant_client``."""
