"""The process-wide objects a running app holds (databases, registry, authenticator, the audit
checkpoint signer)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit.signing import CheckpointSigner
from auth.adapters.oidc import OidcProviders
from auth.oidc import OidcBearer, OidcCallback, OidcLogin
from auth.services import AuthenticationService
from chat.judge import AnswerJudge
from chat.schemas import ChatPolicyBody
from compliance.retention import sweep_active_tenants
from compliance.schemas import RetentionSweep
from compliance.services import SAR_JOB, SarRunner
from dlp.services import DlpEngine
from gateway.batch import BATCH_JOB, BatchRunner
from gateway.classifier import SmallModelClassifier
from gateway.fleet import Fleet, model_choices
from gateway.router import Router
from gateway.services import GatewayService
from kernel.egress import EgressPolicy, policy_of
from kernel.epochs import EpochCache
from kernel.jobs.brokers import make_broker
from kernel.jobs.repositories import JobRepository
from kernel.jobs.runner import JobRunner
from kernel.settings import Settings, resolve_secret
from kernel.tenancy import SystemAuthority, TenantContext, TenantRoute
from keys.services import Keyring
from residency.database import Database
from residency.objects import TenantObjects
from residency.registry import RegionRegistry
from retrieval.adapters.minilm import MiniLMTokenCounter, OnnxMiniLMEmbedder
from retrieval.index import KnowledgeIndex
from retrieval.services import INGEST, REINDEX, IngestHandler, ReindexHandler
from tenants.repositories import TenantRepository

log = structlog.get_logger("bulwark.runtime")


@dataclass(slots=True)
class Runtime:
    settings: Settings
    control: Database
    registry: RegionRegistry
    keyring: Keyring
    authenticator: AuthenticationService
    pepper: str
    operator_token: str
    # Signs audit-chain checkpoints; one deployment key for every tenant and region.
    audit_signer: CheckpointSigner
    system: SystemAuthority
    oidc: OidcProviders
    oidc_login: OidcLogin
    oidc_callback: OidcCallback
    knowledge: KnowledgeIndex
    jobs: JobRunner
    gateway: GatewayService
    # Where URLs a tenant configures may lead (``kernel.egress``): BYO models, OIDC, SAML metadata.
    egress: EgressPolicy
    # Presidio/spaCy (loaded once per process, on first use) and the tenants' DLP hash keys.
    dlp: DlpEngine
    # Runs subject-access requests (a job kind); set by ``build``.
    sar: SarRunner | None = None
    # Grades a sample of generative answers (observability.judge_sample_rate); set by ``build``.
    judge: AnswerJudge | None = None
    # Each tenant's chat policy, kept under its epoch (``kernel.epochs``).
    chat_policies: EpochCache[ChatPolicyBody] = field(default_factory=EpochCache)
    _sweeper: asyncio.Task[None] | None = None

    @property
    def model_choices(self) -> list[str]:
        """Every ``model`` a request may name here (``gateway.fleet.model_choices``)."""
        return model_choices(self.registry.planes())

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        control = Database(
            "control",
            settings.control_url,
            pool_size=settings.database.pool_size,
            echo=settings.database.echo,
        )
        registry = RegionRegistry.from_settings(settings)
        pepper = resolve_secret(settings, settings.security.secret_key, "secret_key")
        operator_token = resolve_secret(
            settings, settings.security.operator_token, "operator_token"
        )
        authenticator = AuthenticationService(
            control,
            registry,
            operator_token=operator_token,
            pepper=pepper,
            principal_cache_size=settings.identity.principal_cache_size,
        )
        keyring = Keyring.from_settings(settings, registry)
        # Every URL a tenant configures (BYO models, its IdP) goes through one egress guard.
        egress = policy_of(settings.egress)
        oidc = OidcProviders(egress, refresh_interval=settings.identity.jwks_min_refresh_seconds)
        oidc_login = OidcLogin(oidc, settings.identity, pepper, registry)
        # Access tokens of a tenant's own IdP are API credentials too (X-Bulwark-Tenant).
        authenticator.idp_bearer = OidcBearer(
            oidc, registry, keyring.for_tenant, settings.identity, authenticator.user_principal
        )
        knowledge = KnowledgeIndex(registry, OnnxMiniLMEmbedder(threads=2), MiniLMTokenCounter())
        # The one capability to act as the system on a tenant: granted here, handed on.
        system = SystemAuthority.grant()
        jobs = JobRunner(
            registry, authenticator.tenant_route, system, broker=make_broker(settings.jobs)
        )
        router_settings = settings.gateway.router
        gateway = GatewayService(
            registry,
            keyring,
            Fleet(settings.gateway),
            Router(
                router_settings,
                SmallModelClassifier(router_settings.classifier_timeout_seconds)
                if router_settings.classifier == "small-model"
                else None,
            ),
            settings.gateway,
            egress=egress,
        )
        runtime = cls(
            settings=settings,
            control=control,
            registry=registry,
            keyring=keyring,
            authenticator=authenticator,
            pepper=pepper,
            operator_token=operator_token,
            audit_signer=CheckpointSigner.from_settings(settings),
            system=system,
            oidc=oidc,
            oidc_login=oidc_login,
            oidc_callback=OidcCallback(oidc_login, registry, keyring.for_tenant),
            knowledge=knowledge,
            jobs=jobs,
            gateway=gateway,
            egress=egress,
            dlp=DlpEngine.default(pepper),
        )
        ingest = IngestHandler(registry, keyring, knowledge, runtime.tenant_objects, runtime.dlp)
        jobs.handler(INGEST, ingest, on_failure=ingest.failed)
        jobs.handler(REINDEX, ReindexHandler(registry, ingest))
        batches = BatchRunner(registry, keyring, gateway)
        jobs.handler(BATCH_JOB, batches, on_failure=batches.failed)
        sar = SarRunner(
            registry,
            keyring,
            knowledge,
            runtime.tenant_objects,
            runtime.audit_signer,
            pepper,
            settled=gateway.settled,
        )
        jobs.handler(SAR_JOB, sar, on_failure=sar.failed)
        runtime.sar = sar
        runtime.judge = AnswerJudge(
            gateway,
            rate=settings.observability.judge_sample_rate,
            model=settings.observability.judge_model,
        )
        return runtime

    def tenant_objects(self, session: AsyncSession, ctx: TenantContext) -> TenantObjects:
        """The tenant's sealed objects in its own region's object store."""
        return TenantObjects(
            self.registry.for_tenant(ctx).objects, self.keyring.for_tenant(session, ctx), ctx
        )

    async def start(self, *, worker: bool = False) -> None:
        await self.jobs.startup(worker=worker)
        if self.jobs.in_process:
            # An in-process broker forgets its queue with the process: jobs left queued or
            # running by a crash (an ingestion, an erasure halfway) are run again. They are
            # idempotent, and an erasure resumes at the step it had not finished.
            await self.resume_jobs()
        interval = self.settings.retention.sweep_interval_seconds
        if not worker and interval > 0:
            self._sweeper = asyncio.create_task(self._sweep_forever(interval))

    async def resume_jobs(self) -> int:
        """Enqueue every tenant's unfinished jobs again; returns how many."""
        async with self.control.transaction(None, read_only=True) as session:
            tenants = [TenantRoute.of(t) for t in await TenantRepository(session).active()]
        resumed = 0
        for route in tenants:
            ctx = self.system.context(route)
            try:
                async with self.registry.tenant_transaction(ctx, read_only=True) as session:
                    unfinished = await JobRepository(session, ctx).unfinished()
            except Exception as exc:  # one region down must not stop the others (or startup)
                log.warning("resume_jobs_failed", tenant_id=str(route.id), error=type(exc).__name__)
                continue
            for job_id in unfinished:
                await self.jobs.enqueue(route.id, job_id)
                resumed += 1
        if resumed:
            log.info("jobs_resumed", count=resumed)
        return resumed

    async def sweep_retention(self) -> dict[uuid.UUID, RetentionSweep]:
        """One retention pass over every active tenant (``bulwark retention sweep`` too)."""
        return await sweep_active_tenants(
            self.control, self.registry, self.knowledge, self.tenant_objects, self.system
        )

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_retention()
            except Exception as exc:  # the next pass tries again
                log.warning("retention_sweep_failed", error=type(exc).__name__)

    async def dispose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.jobs.drain()
        await self.jobs.shutdown()
        if self.judge is not None:
            await self.judge.drain()
        await self.gateway.settled()
        await self.gateway.fleet.aclose()
        await self.knowledge.close()
        await self.control.dispose()
        await self.registry.dispose()
