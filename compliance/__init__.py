"""Compliance duties that reach into every store: subject-access requests (find, export and erase
everything a tenant holds about one person), retention sweeps and tenant purge."""
