"""Data-loss prevention: Presidio redaction in and out, injection guard (issue 6)."""
