"""The vocabulary of audit events, and what records one.

Every package records what it did in the tenant's audit log; the log itself (``audit``) sits
above the packages it does not need, such as ``keys``, whose configuration and rotation are
audited through an ``AuditRecorder`` handed to them (docs/ARCHITECTURE.md, "The layers").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class AuditAction(StrEnum):
    """What happened. Codes are stable: compliance tooling filters on them."""

    TENANT_CREATED = "tenant.created"
    TENANT_UPDATED = "tenant.updated"
    TENANT_ADMIN_BOOTSTRAPPED = "tenant.admin_bootstrapped"
    TENANT_DELETED = "tenant.deleted"
    TENANT_PURGED = "tenant.purged"
    USER_CREATED = "user.created"
    GROUP_CREATED = "group.created"
    GROUP_MEMBER_ADDED = "group.member_added"
    GROUP_MEMBER_REMOVED = "group.member_removed"
    API_KEY_ISSUED = "api_key.issued"
    API_KEY_REVOKED = "api_key.revoked"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    USER_DELETED = "user.deleted"
    GROUP_UPDATED = "group.updated"
    GROUP_DELETED = "group.deleted"
    SSO_LOGIN = "sso.login"
    SSO_CONFIGURED = "sso.configured"
    SESSION_REVOKED = "session.revoked"
    ROLE_MAPPINGS_UPDATED = "role_mappings.updated"
    SCIM_TOKEN_ISSUED = "scim_token.issued"  # noqa: S105 - an event code
    DOCUMENT_UPLOADED = "document.uploaded"
    DOCUMENT_ACL_CHANGED = "document.acl_changed"
    DOCUMENT_DELETED = "document.deleted"
    DOCUMENTS_REINDEX_REQUESTED = "documents.reindex_requested"
    KMS_CONFIGURED = "kms.configured"
    KMS_ROTATED = "kms.rotated"
    MODEL_CALLED = "model.called"
    MODEL_POLICY_UPDATED = "model_policy.updated"
    QUOTAS_UPDATED = "quotas.updated"
    BYO_MODEL_CONFIGURED = "byo_model.configured"
    BYO_MODEL_REMOVED = "byo_model.removed"
    # A URL a tenant configured, refused by the egress guard (the reason and host, never more).
    EGRESS_REFUSED = "egress.refused"
    MODEL_BATCH_SUBMITTED = "model_batch.submitted"
    DLP_POLICY_UPDATED = "dlp.policy_updated"
    # A DLP or injection-guard trip: types/kinds, direction, action and counts; never the text.
    DLP_TRIPPED = "dlp.tripped"
    CHAT_ANSWERED = "chat.answered"
    CHAT_POLICY_UPDATED = "chat_policy.updated"
    DEBUG_RAW_CONTENT_ENABLED = "debug.raw_content_enabled"
    DEBUG_RAW_CONTENT_DISABLED = "debug.raw_content_disabled"
    SAR_REQUESTED = "sar.requested"
    SAR_COMPLETED = "sar.completed"
    SAR_EXPORTED = "sar.exported"
    RETENTION_UPDATED = "retention.updated"
    RETENTION_SWEPT = "retention.swept"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class ResourceType(StrEnum):
    TENANT = "tenant"
    USER = "user"
    GROUP = "group"
    API_KEY = "api_key"
    KMS_KEY = "kms_key"
    DOCUMENT = "document"
    SESSION = "session"
    IDENTITY_PROVIDER = "identity_provider"
    ROLE_MAPPINGS = "role_mappings"
    SCIM_TOKEN = "scim_token"  # noqa: S105 - a resource type
    MODEL_CALL = "model_call"
    MODEL_POLICY = "model_policy"
    QUOTA = "quota"
    MODEL_ENDPOINT = "model_endpoint"
    MODEL_BATCH = "model_batch"
    DLP_POLICY = "dlp_policy"
    CHAT_SESSION = "chat_session"
    CHAT_POLICY = "chat_policy"
    SAR_REQUEST = "sar_request"
    RETENTION_POLICY = "retention_policy"
    DEBUG_SWITCH = "debug_switch"


@runtime_checkable
class AuditRecorder(Protocol):
    """Appends one event to the tenant's audit log, in the caller's unit of work
    (``audit.services.AuditLog``)."""

    async def record(
        self,
        action: AuditAction,
        *,
        resource_type: ResourceType,
        resource_id: uuid.UUID | str | None,
        detail: Mapping[str, Any] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
    ) -> object: ...
