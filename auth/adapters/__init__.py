"""Identity-provider adapters: the only modules that import python-keycloak or python3-saml."""
