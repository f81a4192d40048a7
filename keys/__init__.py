"""Envelope encryption over a pluggable, customer-held KMS (issue 3)."""
