"""Object-store adapters: the only modules that touch a region's object storage."""
