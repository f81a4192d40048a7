"""Residency: resolves a tenant to its region's data plane and fails closed for anything unknown."""
