"""Adapters of the kernel: HTTP to tenant-configured URLs through the egress guard."""
