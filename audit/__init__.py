"""Append-only, hash-chained audit log and subject-access requests (issues 3 and 9)."""
