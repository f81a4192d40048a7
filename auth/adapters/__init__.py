"""Vendor adapters of the auth package (the only modules here that import an IdP toolkit)."""
