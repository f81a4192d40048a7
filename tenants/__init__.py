"""Tenants: the control-plane record of who a tenant is and which region holds its data."""
