from __future__ import annotations

from kernel.errors import InvalidInput, ServiceUnavailable


class TenantKeyUnavailable(ServiceUnavailable):
    """The tenant's KMS key refuses to unwrap (disabled, deleted, access revoked): fail closed."""

    code = "tenant_key_unavailable"
    title = "Tenant key unavailable"

    def __init__(self) -> None:
        super().__init__(
            "This tenant's encryption key cannot be used (disabled, deleted or access revoked); "
            "its data stays sealed until a tenant admin restores access to the key."
        )


class KmsUnavailable(ServiceUnavailable):
    code = "kms_unavailable"
    title = "KMS unavailable"

    def __init__(self, region: str) -> None:
        super().__init__(
            f"The key-management service of region {region!r} did not answer.", region=region
        )


class KmsKeyRejected(InvalidInput):
    code = "kms_key_rejected"
    title = "KMS key rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The key failed a wrap/unwrap round trip: {reason}.")


class KmsKeyWrongRegion(InvalidInput):
    code = "kms_key_wrong_region"
    title = "KMS key in the wrong region"

    def __init__(self, key_region: str | None, required: str | None) -> None:
        super().__init__(
            f"The key's region {key_region!r} is not this tenant's region {required!r}; "
            "data keys never leave the tenant's region.",
            key_region=key_region,
            required_region=required,
        )


class KmsProviderUnsupported(InvalidInput):
    code = "kms_provider_unsupported"
    title = "KMS provider not available in this region"

    def __init__(self, provider: str, region: str) -> None:
        super().__init__(
            f"Region {region!r} is not configured for {provider!r} keys.",
            provider=provider,
            region=region,
        )
