"""The request-scoped dependencies of every route, registered once on the app: the caller,
the units of work, the services built from the runtime's parts, and those parts by name.

Litestar resolves an app-level dependency by its parameter name, and only for a handler (or
another dependency) that names it: a route pays for what it asks for and nothing else.
Controllers declare the parameters they need (``db``, ``ctx``, ``documents``, ``settings``...)
and import nothing from ``app`` (``tests/unit/test_architecture.py``); below the composition
root only the bearer middleware reads the runtime. A route family may provide a name of its own
instead (SCIM's ``ctx`` and ``audit``: the IdP, by its SCIM token).

Two rules shape these providers:

- A unit of work (``db``, ``key_admin_db``, ``control_db``) is a yield dependency: Litestar runs
  the handler inside it, throws any error into it (rollback) and otherwise lets it commit before
  the response leaves, so a commit failure still becomes an error response rather than a false
  success. The tenant's unit of work opens only while the tenant's key works (fail closed).
- Litestar resolves the dependencies whose own dependencies are resolved together: one alone is
  awaited, two or more run in a task group. A unit of work entered in a task would be entered in
  another context than the one that ends it, and a task group costs ~0.1 ms on a hot path. So
  the service providers read the runtime from the request instead of naming its parts as
  dependencies; the runtime's parts are provided by name for the handlers that use one
  directly; and every unit of work is resolved alone (``tests/integration/test_unit_of_work.py``
  checks every route).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.runtime import Runtime
from audit.deps import operator_origin, provide_audit_log
from audit.services import AuditExporter, AuditLog
from audit.signing import CheckpointSigner
from auth.adapters.oidc import OidcProviders
from auth.oidc import OidcCallback, OidcConfigService, OidcLogin
from auth.repositories import ApiKeyRepository, ScimTokenRepository, UserRepository
from auth.saml import SamlConfigService, SamlEndpoints, SamlLoginService
from auth.saml_controllers import TOOLKIT
from auth.saml_metadata import SamlMetadataService
from auth.scim.deps import scim_base_url
from auth.scim.services import ScimGroupService, ScimTokenService, ScimUserService
from auth.services import ApiKeyService, AuthenticationService, TenantAdminBootstrap
from chat.debug.services import DebugSwitchService
from chat.services import ChatService
from chat.sessions import ChatSessionService
from compliance.services import SarService
from dlp.repositories import DlpPolicyRepository
from dlp.services import DlpPolicyService, DlpService, TripRecorder
from gateway.admin import GatewayAdminService
from gateway.batch import BatchService
from gateway.services import GatewayService
from kernel.deps import provide_tenant_context
from kernel.jobs.runner import JobRunner
from kernel.observability import ensure_request_id
from kernel.settings import Settings
from kernel.tenancy import TenantContext
from keys.services import Keyring, TenantKeys
from residency.database import Database
from residency.objects import TenantObjects
from residency.registry import RegionRegistry
from retrieval.services import DocumentService
from tenants.repositories import TenantRepository
from tenants.services import TenantService


def get_runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# -- units of work ---------------------------------------------------------------------------


async def provide_tenant_session(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> AsyncIterator[AsyncSession]:
    """``db``: the tenant's unit of work, opened only while the tenant's key works (fail
    closed)."""
    runtime = get_runtime(request)
    read_only = request.method in ("GET", "HEAD")
    async with runtime.registry.tenant_transaction(ctx, read_only=read_only) as session:
        await runtime.keyring.for_tenant(session, ctx).require_usable()
        yield session


async def provide_key_admin_session(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> AsyncIterator[AsyncSession]:
    """``key_admin_db``: the tenant's unit of work without the key gate (KMS administration
    only: an admin must be able to see and replace a key that has stopped working)."""
    async with get_runtime(request).registry.tenant_transaction(ctx) as session:
        yield session


async def provide_control_session(
    control: NamedDependency[Database],
) -> AsyncIterator[AsyncSession]:
    """``control_db``: the control plane's unit of work.

    It takes the control database as a dependency, not from the request, so that it resolves a
    level after the runtime's parts an operator route names (``settings``), alone."""
    async with control.transaction(None) as session:
        yield session


def provide_key_admin_audit(
    request: Request[Any, Any, Any],
    key_admin_db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> AuditLog:
    """``key_admin_audit``: the caller's audit log in the key-admin unit of work."""
    return provide_audit_log(request, key_admin_db, ctx)


# -- the runtime's parts, by name ------------------------------------------------------------


def provide_settings(request: Request[Any, Any, Any]) -> Settings:
    return get_runtime(request).settings


def provide_control(request: Request[Any, Any, Any]) -> Database:
    return get_runtime(request).control


def provide_registry(request: Request[Any, Any, Any]) -> RegionRegistry:
    return get_runtime(request).registry


def provide_keyring(request: Request[Any, Any, Any]) -> Keyring:
    return get_runtime(request).keyring


def provide_authenticator(request: Request[Any, Any, Any]) -> AuthenticationService:
    return get_runtime(request).authenticator


def provide_pepper(request: Request[Any, Any, Any]) -> str:
    return get_runtime(request).pepper


def provide_oidc(request: Request[Any, Any, Any]) -> OidcProviders:
    return get_runtime(request).oidc


def provide_jobs(request: Request[Any, Any, Any]) -> JobRunner:
    return get_runtime(request).jobs


def provide_gateway(request: Request[Any, Any, Any]) -> GatewayService:
    return get_runtime(request).gateway


def provide_audit_signer(request: Request[Any, Any, Any]) -> CheckpointSigner:
    return get_runtime(request).audit_signer


def provide_oidc_login(request: Request[Any, Any, Any]) -> OidcLogin:
    return get_runtime(request).oidc_login


def provide_oidc_callback(request: Request[Any, Any, Any]) -> OidcCallback:
    return get_runtime(request).oidc_callback


# -- services --------------------------------------------------------------------------------


def provide_tenant_service(
    request: Request[Any, Any, Any], control_db: NamedDependency[AsyncSession]
) -> TenantService:
    runtime = get_runtime(request)
    return TenantService(
        TenantRepository(control_db),
        runtime.registry,
        runtime.keyring,
        operator_origin(request),
        runtime.system,
    )


def provide_tenant_keys(
    request: Request[Any, Any, Any],
    key_admin_db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> TenantKeys:
    return get_runtime(request).keyring.for_tenant(key_admin_db, ctx)


def provide_tenant_objects(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> TenantObjects:
    """The tenant's sealed objects in its own region's object store."""
    return get_runtime(request).tenant_objects(db, ctx)


def provide_audit_exporter(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> AuditExporter:
    """The chain's export: a stream that outlives the request and opens its own unit of work."""
    return AuditExporter(get_runtime(request).registry, ctx)


def provide_api_key_service(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ApiKeyService:
    return ApiKeyService(
        ApiKeyRepository(db, ctx), UserRepository(db, ctx), get_runtime(request).pepper, audit
    )


def provide_bootstrap(request: Request[Any, Any, Any]) -> TenantAdminBootstrap:
    return TenantAdminBootstrap(get_runtime(request).authenticator, operator_origin(request))


def provide_oidc_config(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> OidcConfigService:
    return OidcConfigService(db, ctx, get_runtime(request).keyring.for_tenant(db, ctx), audit)


def provide_saml_config_service(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> SamlConfigService:
    endpoints = SamlEndpoints.of(get_runtime(request).settings.identity.public_url, ctx.tenant_slug)
    return SamlConfigService(db, ctx, audit, toolkit=TOOLKIT, endpoints=endpoints)


def provide_saml_metadata_service(
    request: Request[Any, Any, Any],
    saml_config: NamedDependency[SamlConfigService],
    ctx: NamedDependency[TenantContext],
) -> SamlMetadataService:
    runtime = get_runtime(request)
    return SamlMetadataService(
        saml_config, egress=runtime.egress.for_tenant(ctx.tenant_slug), registry=runtime.registry
    )


def provide_saml_login_service(request: Request[Any, Any, Any]) -> SamlLoginService:
    runtime = get_runtime(request)

    async def key_gate(session: AsyncSession, ctx: TenantContext) -> None:
        await runtime.keyring.for_tenant(session, ctx).require_usable()

    return SamlLoginService(
        runtime.authenticator,
        toolkit=TOOLKIT,
        identity=runtime.settings.identity,
        key_gate=key_gate,
        request_id=ensure_request_id(request.scope),
    )


def provide_scim_users(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ScimUserService:
    return ScimUserService(db, ctx, audit, scim_base_url(get_runtime(request).settings, ctx))


def provide_scim_groups(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ScimGroupService:
    return ScimGroupService(db, ctx, audit, scim_base_url(get_runtime(request).settings, ctx))


def provide_scim_tokens(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> ScimTokenService:
    return ScimTokenService(ScimTokenRepository(db, ctx), get_runtime(request).pepper, audit)


def dlp_service(
    request: Request[Any, Any, Any], db: AsyncSession, ctx: TenantContext, audit: AuditLog
) -> DlpService:
    runtime = get_runtime(request)
    return DlpService(db, ctx, runtime.dlp, TripRecorder(db, ctx, audit, runtime.registry))


def provide_dlp_policy_service(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> DlpPolicyService:
    detector = get_runtime(request).dlp.detector
    return DlpPolicyService(DlpPolicyRepository(db, ctx), audit, detector)


def provide_documents(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> DocumentService:
    runtime = get_runtime(request)
    return DocumentService(
        db,
        ctx,
        runtime.keyring.for_tenant(db, ctx),
        runtime.tenant_objects(db, ctx),
        runtime.knowledge,
        runtime.jobs,
        audit,
        dlp_service(request, db, ctx, audit),
    )


def provide_gateway_admin(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> GatewayAdminService:
    runtime = get_runtime(request)
    return GatewayAdminService(db, ctx, runtime.gateway, runtime.keyring.for_tenant(db, ctx), audit)


def provide_batches(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> BatchService:
    runtime = get_runtime(request)
    return BatchService(
        db,
        ctx,
        runtime.keyring.for_tenant(db, ctx),
        runtime.jobs,
        audit,
        max_items=runtime.settings.gateway.batch_max_items,
        models=runtime.model_choices,
    )


def provide_chat(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> ChatService:
    runtime = get_runtime(request)
    return ChatService(
        ctx,
        registry=runtime.registry,
        keyring=runtime.keyring,
        knowledge=runtime.knowledge,
        gateway=runtime.gateway,
        dlp_engine=runtime.dlp,
        pepper=runtime.pepper,
        request_id=ensure_request_id(request.scope),
        judge=runtime.judge,
        raw_debug=runtime.settings.observability.allow_raw_content_debug,
        policies=runtime.chat_policies,
    )


def provide_chat_sessions(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
) -> ChatSessionService:
    return ChatSessionService(db, ctx, get_runtime(request).keyring.for_tenant(db, ctx))


def provide_debug_switch(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> DebugSwitchService:
    runtime = get_runtime(request)
    return DebugSwitchService(
        db,
        ctx,
        audit,
        allowed=runtime.settings.observability.allow_raw_content_debug,
        pepper=runtime.pepper.encode(),
    )


def provide_sar(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    ctx: NamedDependency[TenantContext],
    audit: NamedDependency[AuditLog],
) -> SarService:
    runtime = get_runtime(request)
    return SarService(db, ctx, runtime.keyring.for_tenant(db, ctx), audit, pepper=runtime.pepper)


def _sync(provider: Any) -> Provide:
    return Provide(provider, sync_to_thread=False)


def app_dependencies() -> dict[str, Provide]:
    """The app-level dependencies, by the name a handler gives its parameter."""
    return {
        # The caller, the request's audit log, and the units of work.
        "ctx": _sync(provide_tenant_context),
        "audit": _sync(provide_audit_log),
        "db": Provide(provide_tenant_session),
        "key_admin_db": Provide(provide_key_admin_session),
        "key_admin_audit": _sync(provide_key_admin_audit),
        "control_db": Provide(provide_control_session),
        # The runtime's parts, for the handlers that use one directly.
        "settings": _sync(provide_settings),
        "control": _sync(provide_control),
        "registry": _sync(provide_registry),
        "keyring": _sync(provide_keyring),
        "authenticator": _sync(provide_authenticator),
        "pepper": _sync(provide_pepper),
        "oidc": _sync(provide_oidc),
        "jobs": _sync(provide_jobs),
        "gateway": _sync(provide_gateway),
        "audit_signer": _sync(provide_audit_signer),
        "oidc_login": _sync(provide_oidc_login),
        "oidc_callback": _sync(provide_oidc_callback),
        # Services.
        "tenants": _sync(provide_tenant_service),
        "tenant_keys": _sync(provide_tenant_keys),
        "tenant_objects": _sync(provide_tenant_objects),
        "audit_exporter": _sync(provide_audit_exporter),
        "api_keys": _sync(provide_api_key_service),
        "bootstrap": _sync(provide_bootstrap),
        "oidc_config": _sync(provide_oidc_config),
        "saml_config": _sync(provide_saml_config_service),
        "saml_metadata": _sync(provide_saml_metadata_service),
        "saml_login": _sync(provide_saml_login_service),
        "scim_users": _sync(provide_scim_users),
        "scim_groups": _sync(provide_scim_groups),
        "scim_tokens": _sync(provide_scim_tokens),
        "dlp_policies": _sync(provide_dlp_policy_service),
        "documents": _sync(provide_documents),
        "gateway_admin": _sync(provide_gateway_admin),
        "batches": _sync(provide_batches),
        "chat": _sync(provide_chat),
        "chat_sessions": _sync(provide_chat_sessions),
        "debug_switch": _sync(provide_debug_switch),
        "sar": _sync(provide_sar),
    }
