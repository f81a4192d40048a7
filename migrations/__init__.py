"""Alembic trees: `control` (tenant routing) and `regional` (tenant-owned data, per region)."""
