"""Subject-access requests: find, export and erase everything a tenant holds about one person."""
