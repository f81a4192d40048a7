"""The Litestar application factory."""

from __future__ import annotations

import gc

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, Schema, SecurityScheme
from litestar.plugins.opentelemetry import OpenTelemetryConfig

from app import __version__
from app.console import TEMPLATES, console_routers
from app.dependencies import app_dependencies
from app.health import HealthController, MetricsController
from app.runtime import Runtime
from audit.controllers import AuditController
from auth.controllers import (
    AdminApiKeyController,
    AdminGroupController,
    AdminUserController,
    LogoutController,
    MeController,
    OperatorTenantAdminController,
    RoleMappingController,
)
from auth.middleware import EXCLUDE_FROM_AUTH, SESSION_COOKIE, BearerAuthMiddleware
from auth.saml_controllers import SamlConfigController, SamlController
from auth.scim import (
    SCIM_PREFIX,
    AdminScimTokenController,
    ScimDiscoveryController,
    ScimGroupController,
    ScimRootSearchController,
    ScimUserController,
    scim_exception_handler,
)
from auth.sso_controllers import OidcConfigController, OidcLoginController
from chat.controllers import (
    ChatController,
    ChatPolicyController,
    ChatSessionController,
    ModelsController,
)
from chat.debug.controllers import DebugSwitchController
from compliance.controllers import RetentionController, SarController
from dlp.controllers import DlpPolicyController
from gateway.controllers import (
    ByoModelController,
    GatewayBatchController,
    GatewayController,
    ModelPolicyController,
    QuotaController,
    UsageController,
)
from kernel.api import BEARER, SESSION_COOKIE_AUTH, SESSION_TOKEN_AUTH, document_event_streams
from kernel.errors import with_prefix_handler
from kernel.observability import (
    TracingMiddleware,
    add_request_id_header,
    configure_logging,
    configure_tracing,
)
from kernel.settings import Settings, get_settings
from kernel.strict_bodies import document_strict_bodies, validate_body_strictly
from keys.controllers import KmsController
from retrieval.controllers import DocumentController, JobController, SearchController
from tenants.controllers import TenantController

TENANT_ROUTES = [
    AdminUserController,
    AdminGroupController,
    AdminApiKeyController,
    MeController,
    KmsController,
    RoleMappingController,
    LogoutController,
    OidcConfigController,
    AuditController,
    SamlConfigController,
    AdminScimTokenController,
    DocumentController,
    JobController,
    SearchController,
    GatewayController,
    GatewayBatchController,
    QuotaController,
    ModelPolicyController,
    ByoModelController,
    UsageController,
    DlpPolicyController,
    ChatController,
    ChatSessionController,
    ChatPolicyController,
    DebugSwitchController,
    ModelsController,
    SarController,
    RetentionController,
]
OPERATOR_ROUTES = [TenantController, OperatorTenantAdminController]
# Sign-in flows: unauthenticated by design, tenant named in the path.
SIGN_IN_ROUTES = [OidcLoginController, SamlController]
# SCIM 2.0 for the tenants' IdPs: authenticated by SCIM tokens, not by the bearer middleware.
SCIM_ROUTES = [
    ScimDiscoveryController,
    ScimUserController,
    ScimGroupController,
    ScimRootSearchController,
]


def serve_app() -> Litestar:
    """The application as ``bulwark serve`` runs it (uvicorn's factory): ``create_app`` whose
    heap is frozen once started (``freeze_startup_heap``)."""
    return create_app(freeze_heap=True)


def freeze_startup_heap() -> None:
    """Move every object alive once the process has started (modules, settings, compiled
    statements, loaded models) out of the cyclic garbage collector's reach (``gc.freeze``).

    A full collection otherwise walks all of them again, every few hundred requests under load:
    170 to 190 ms with the event loop stopped, every request in flight waiting, measured at 64 in
    flight; frozen, one takes 3 to 6 ms. Frozen objects are still freed by reference counting;
    only a cycle among them that became garbage later would never be collected, and start-up
    state lives as long as the process. Tests do not freeze: their processes build and drop
    many apps."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.observability)
    tracer_provider = configure_tracing(settings.observability)
    runtime = Runtime.build(settings)

    async def start_runtime() -> None:
        await runtime.start()
        if freeze_heap:
            freeze_startup_heap()

    async def dispose_runtime() -> None:
        await runtime.dispose()

    app = Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            *OPERATOR_ROUTES,
            *TENANT_ROUTES,
            *SIGN_IN_ROUTES,
            *SCIM_ROUTES,
            *console_routers(settings.identity, runtime.pepper),
        ],
        # Every handler's services, units of work and runtime parts, by parameter name.
        dependencies=app_dependencies(),
        template_config=TEMPLATES,
        middleware=[
            # Litestar runs the OpenTelemetry middleware outermost wherever it is listed, around
            # routing and the exception handlers: the span, the access line and the request
            # metrics are taken there (``TracingMiddleware``), with the status actually sent.
            OpenTelemetryConfig(
                tracer_provider=tracer_provider,
                middleware_class=TracingMiddleware,
                exclude=["/metrics", "/healthz"],
                # One span per request, not one per ASGI message (an SSE answer sends one
                # message per token): the steps of a request are spans of their own.
                exclude_spans=["receive", "send"],
            ).middleware,
            DefineMiddleware(
                BearerAuthMiddleware, exclude_from_auth_key=EXCLUDE_FROM_AUTH, exclude=["^/schema"]
            ),
        ],
        exception_handlers=with_prefix_handler(SCIM_PREFIX, scim_exception_handler),
        before_send=[add_request_id_header],
        before_request=validate_body_strictly,
        on_startup=[start_runtime],
        on_shutdown=[dispose_runtime],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Bulwark",
            version=__version__,
            description="Multi-tenant enterprise RAG backend.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    BEARER: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A tenant API key (bwk_...) or the operator token.",
                    ),
                    SESSION_COOKIE_AUTH: SecurityScheme(
                        type="apiKey",
                        name=SESSION_COOKIE,
                        security_scheme_in="cookie",
                        description="The Bulwark session a browser sign-in opened.",
                    ),
                    SESSION_TOKEN_AUTH: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A Bulwark session's token (bws_...).",
                    ),
                }
            ),
        ),
        debug=False,
        logging_config=None,
    )
    app.state.runtime = runtime
    document_strict_bodies(app)
    document_event_streams(app)
    _document_configuration(app, runtime)
    return app


def _property(app: Litestar, component: str, name: str) -> Schema | None:
    schema = (app.openapi_schema.components.schemas or {}).get(component)
    prop = (schema.properties or {}).get(name) if isinstance(schema, Schema) else None
    return prop if isinstance(prop, Schema) else None


def _document_configuration(app: Litestar, runtime: Runtime) -> None:
    """Choices and limits that are this deployment's configuration: publish them, so that a
    request the document allows is one this server accepts."""
    region = _property(app, "TenantCreate", "region")
    if region is not None:
        region.enum = list(runtime.registry.names)
        region.description = "One of the regions this deployment configures."
    models = runtime.model_choices
    for component in (
        "ChatRequest",
        "ChatCompletionRequest",
        "RagCompletionRequest",
        "BatchRequestItem",
    ):
        model = _property(app, component, "model")
        if model is not None:
            model.enum = models
            model.description = (
                "auto (the router decides), a tier, or a model this deployment configures: an "
                "endpoint's name or alias (of the tenant's region; another region's is refused "
                "with 422 unknown_model) or the tenant's own model of a tier (byo-<tier>, once "
                "set)."
            )
    requests = _property(app, "BatchCreate", "requests")
    if requests is not None:
        requests.max_items = runtime.settings.gateway.batch_max_items
    # Production deployments take https issuers only (``auth.oidc.check_issuer``).
    if runtime.settings.environment == "production":
        for name in ("issuer", "server_url"):
            url = _property(app, "OidcConfigWrite", name)
            if url is not None and url.pattern:
                url.pattern = url.pattern.replace("^https?://", "^https://", 1)
    # A custom recognizer's name must not be a built-in entity type.
    custom = _property(app, "CustomRecognizerSpec", "type")
    if custom is not None:
        custom.schema_not = Schema(enum=sorted(runtime.dlp.detector.supported_entities))
    # The KMS providers some region offers, and the key regions they take (each tenant's own:
    # its region's name for the local KMS, the region's AWS region for AWS KMS).
    planes = runtime.registry.planes()
    local = [plane.name for plane in planes if plane.kms.key_file]
    aws = [plane.kms.aws_region for plane in planes if plane.kms.aws_region]
    providers = [*(["local"] if local else []), *(["aws-kms"] if aws else [])]
    provider = _property(app, "KmsConfigUpdate", "provider")
    key_region = _property(app, "KmsConfigUpdate", "region")
    if provider is not None and key_region is not None and providers:
        provider.enum = providers
        key_region.enum = list(dict.fromkeys([*local, *aws]))
        key_region.description = "The tenant's own region (its AWS region for AWS KMS)."
