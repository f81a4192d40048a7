"""Identity-provider adapters: the only modules that import the OIDC/JOSE libraries (Authlib,
joserfc) or python3-saml."""
