"""The kernel: what every package below the composition root shares (docs/ARCHITECTURE.md).

Database base and types, errors, settings, HTTP helpers, observability, the egress guard, the
tenancy types and guards, the tenant-scoped repository base and the background jobs. It imports
no other Bulwark package.
"""
