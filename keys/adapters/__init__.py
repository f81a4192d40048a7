"""KMS adapters: the only modules that talk to a key-management service."""
