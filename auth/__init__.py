"""Identity and access: API keys, principals, roles, and the only constructor of TenantContext."""
