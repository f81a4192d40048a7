"""The ``bulwark`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from app import __version__
from kernel.settings import Settings, get_settings


@click.group()
def main() -> None:
    """Bulwark: multi-tenant enterprise RAG backend."""


@main.command()
@click.option("--host", default=None, help="Bind address (default from settings: 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default from settings: 8000).")
@click.option(
    "--dev-idp",
    is_flag=True,
    help="Also serve the demo tenants' development IdP on 127.0.0.1 (never in production).",
)
def serve(host: str | None, port: int | None, dev_idp: bool) -> None:
    """Serve the API (and the console)."""
    import contextlib

    settings = get_settings()
    with contextlib.ExitStack() as stack:
        if dev_idp:
            running = stack.enter_context(_dev_idp(settings))
            settings = _allow_dev_idp(settings, running.provider.base_url)
        _serve(settings, host, port)


def _allow_dev_idp(settings: Settings, origin: str) -> Settings:
    """The development IdP's exact origin joins the egress allow-list, for this process only
    (the application factory reads the settings again)."""
    origins = [*settings.egress.allow_origins, origin]
    os.environ["BULWARK_EGRESS__ALLOW_ORIGINS"] = json.dumps(origins)
    get_settings.cache_clear()
    return get_settings()


def _dev_idp(settings: Settings) -> Any:
    from auth.devidp import RunningIdp, config_path, load_config

    if settings.environment == "production":
        raise click.ClickException("the development IdP never runs in production")
    path = config_path(settings.data_dir)
    if not path.exists():
        raise click.ClickException(f"{path} is missing: run `bulwark demo` first")
    running = RunningIdp(load_config(path))
    click.echo(f"development IdP (no passwords, dev only) on {running.provider.base_url}", err=True)
    return running


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    uvicorn.run(
        "app.main:serve_app",
        factory=True,
        host=host or settings.server.host,
        port=port or settings.server.port,
        workers=settings.server.workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


@main.command()
def worker() -> None:
    """Run ingestion jobs from the configured broker (jobs.broker_url) until SIGINT/SIGTERM."""
    import signal

    from app.runtime import Runtime
    from kernel.observability import configure_logging

    settings = get_settings()
    if settings.jobs.broker_url is None:
        raise click.ClickException(
            "jobs.broker_url is not set: the embedded default runs jobs in the API process "
            "(set BULWARK_JOBS__BROKER_URL=amqp://... to run separate workers)"
        )
    configure_logging(settings.observability)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runtime = Runtime.build(settings)
        try:
            await runtime.start(worker=True)
            click.echo(f"worker consuming {settings.jobs.queue}", err=True)
            await runtime.jobs.work(concurrency=settings.jobs.concurrency, stop=stop)
        finally:
            await runtime.dispose()

    asyncio.run(run())


@main.command()
def migrate() -> None:
    """Apply the control-plane and regional migrations to every configured database."""
    from migrations.runner import migrate as run

    for name in run(get_settings()):
        click.echo(f"migrated {name}")


@main.command()
@click.option(
    "--dev-idp-port",
    default=8001,
    type=int,
    show_default=True,
    help="Port of the development IdP the demo tenants sign in through (`serve --dev-idp`).",
)
def demo(dev_idp_port: int) -> None:
    """Create (or find) the demo tenants and print their credentials."""
    from app.demo import credentials_path, seed_demo

    settings = get_settings()
    output = asyncio.run(seed_demo(settings, dev_idp_port=dev_idp_port))
    click.echo(json.dumps(output, indent=2))
    click.echo(f"written to {credentials_path(settings)}", err=True)


@main.group()
def tenants() -> None:
    """Tenant lifecycle jobs."""


@tenants.command("purge")
def tenants_purge() -> None:
    """Crypto-shred every deleted tenant whose grace period has passed."""
    from app.runtime import Runtime
    from compliance.purge import purge_due_tenants

    async def run() -> list[str]:
        runtime = Runtime.build(get_settings())
        try:
            ids = await purge_due_tenants(
                runtime.control, runtime.registry, runtime.keyring, runtime.system
            )
        finally:
            await runtime.dispose()
        return [str(tenant_id) for tenant_id in ids]

    click.echo(json.dumps({"purged": asyncio.run(run())}))


@main.group()
def kms() -> None:
    """The embedded default's local KMS (a key file per region)."""


def _local_kms(region: str) -> Any:

    from keys.adapters.local import LocalKms

    settings = get_settings()
    if region not in settings.regions or not settings.regions[region].kms.key_file:
        raise click.BadParameter(f"no local KMS key file in region {region!r}")
    return LocalKms(Path(settings.regions[region].kms.key_file or ""))


@kms.command("create-key")
@click.option("--region", required=True)
@click.option("--owner", "owner", default=None, help="Tenant id the key is reserved to.")
def kms_create_key(region: str, owner: str | None) -> None:
    """Create a key in the region's local key file and print its id."""
    local = _local_kms(region)
    click.echo(local.create_key_sync("created with bulwark kms create-key", owner).key_id)


@kms.command("disable-key")
@click.option("--region", required=True)
@click.argument("key_id")
def kms_disable_key(region: str, key_id: str) -> None:
    """Disable a key (a customer revoking access): its tenant's data becomes unreadable."""
    _local_kms(region).set_state(key_id, "disabled")


@kms.command("enable-key")
@click.option("--region", required=True)
@click.argument("key_id")
def kms_enable_key(region: str, key_id: str) -> None:
    """Re-enable a disabled key."""
    _local_kms(region).set_state(key_id, "enabled")


@main.group()
def audit() -> None:
    """The audit log: check a tenant's hash chain."""


@audit.command("verify")
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
def audit_verify(slug: str) -> None:
    """Recompute a tenant's audit chain; exit 0 when intact, 1 when broken."""
    result = asyncio.run(_verify_audit_chain(get_settings(), slug))
    click.echo(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


async def _verify_audit_chain(settings: Settings, slug: str) -> dict[str, Any]:
    from app.runtime import Runtime
    from audit.services import AuditService
    from kernel.tenancy import TenantRoute
    from tenants.repositories import TenantRepository

    runtime = Runtime.build(settings)
    try:
        async with runtime.control.transaction(None) as session:
            tenant = await TenantRepository(session).get_by_slug(slug)
            if tenant is None:
                raise click.BadParameter(f"no tenant with slug {slug!r}", param_hint="--tenant")
            route = TenantRoute.of(tenant)
        # A system context: the verification reads this one tenant's chain, in its own region.
        ctx = runtime.system.context(route)
        async with runtime.registry.tenant_transaction(ctx) as session:
            verification = await AuditService(session, ctx).verify()
    finally:
        await runtime.dispose()
    return {
        "tenant": slug,
        "ok": verification.ok,
        "events_checked": verification.events_checked,
        "first_bad_sequence": verification.first_bad_sequence,
    }


@main.group()
def retention() -> None:
    """Retention periods: enforce them now (the API process also sweeps on a timer)."""


@retention.command("sweep")
def retention_sweep() -> None:
    """Sweep every active tenant's retention policy once; print what was removed."""
    import msgspec

    from app.runtime import Runtime

    async def run() -> dict[str, Any]:
        runtime = Runtime.build(get_settings())
        try:
            swept = await runtime.sweep_retention()
        finally:
            await runtime.dispose()
        return {str(k): msgspec.to_builtins(v) for k, v in swept.items()}

    click.echo(json.dumps({"swept": asyncio.run(run())}))


@main.group()
def sar() -> None:
    """Subject-access requests for operators: find, export or erase a person's data."""


def _subject_options(command: Any) -> Any:
    command = click.option("--tenant", "slug", required=True, help="The tenant's slug.")(command)
    command = click.option("--email", default=None, help="The person's email.")(command)
    command = click.option("--external-id", default=None, help="The IdP external id.")(command)
    return click.option("--user-id", default=None, help="The user id.")(command)


@sar.command("find")
@_subject_options
def sar_find(slug: str, email: str | None, external_id: str | None, user_id: str | None) -> None:
    """Print what every store holds about the person (counts and ids), as a signed report."""
    click.echo(json.dumps(asyncio.run(_run_sar(slug, "access", email, external_id, user_id))))


@sar.command("export")
@_subject_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Zip file.")
def sar_export(
    slug: str, email: str | None, external_id: str | None, user_id: str | None, out: str
) -> None:
    """Write the person's access bundle (a zip of JSON files and the signed report)."""
    result = asyncio.run(_run_sar(slug, "access", email, external_id, user_id, export_to=out))
    click.echo(json.dumps({"request_id": result["request_id"], "written": out}))


@sar.command("erase")
@_subject_options
@click.option("--documents", type=click.Choice(["delete", "reassign"]), default="delete")
def sar_erase(
    slug: str, email: str | None, external_id: str | None, user_id: str | None, documents: str
) -> None:
    """Erase the person from every store; print the signed erasure report."""
    click.echo(
        json.dumps(
            asyncio.run(_run_sar(slug, "erasure", email, external_id, user_id, documents=documents))
        )
    )


async def _run_sar(
    slug: str,
    kind: str,
    email: str | None,
    external_id: str | None,
    user_id: str | None,
    *,
    documents: str = "delete",
    export_to: str | None = None,
) -> dict[str, Any]:
    """One request, run now in this process (not queued), on the operator's behalf."""
    import uuid

    from app.runtime import Runtime
    from audit.pseudonyms import OPERATOR_SUBJECT
    from audit.services import AuditLog
    from compliance.errors import SubjectNotFound
    from compliance.services import SarService
    from kernel.jobs.models import Job
    from kernel.tenancy import TenantRoute
    from tenants.repositories import TenantRepository

    if sum(v is not None for v in (email, external_id, user_id)) != 1:
        raise click.UsageError(
            "name the person by exactly one of --email, --external-id, --user-id"
        )
    runtime = Runtime.build(get_settings())
    try:
        async with runtime.control.transaction(None) as session:
            tenant = await TenantRepository(session).get_by_slug(slug)
            if tenant is None:
                raise click.BadParameter(f"no tenant with slug {slug!r}", param_hint="--tenant")
            ctx = runtime.system.context(TenantRoute.of(tenant))

        def service(session: Any) -> SarService:
            audit = AuditLog(session, ctx, subject=OPERATOR_SUBJECT)
            keys = runtime.keyring.for_tenant(session, ctx)
            return SarService(session, ctx, keys, audit, pepper=runtime.pepper)

        async with runtime.registry.tenant_transaction(ctx) as session:
            sars = service(session)
            try:
                subject_id, reference = await sars.resolve(
                    user_id=uuid.UUID(user_id) if user_id else None,
                    email=email,
                    external_id=external_id,
                )
            except SubjectNotFound as missing:
                raise click.ClickException(missing.detail) from None
            request, job = await sars.submit(kind, subject_id, reference, documents)
        assert runtime.sar is not None
        await runtime.sar(ctx, Job(id=job.id, kind=job.kind))
        async with runtime.registry.tenant_transaction(ctx) as session:
            sars = service(session)
            done = await sars.get(request.id)
            assert done is not None
            report = await sars.report(done)
            if export_to is not None:
                bundle = await sars.export(done, runtime.tenant_objects(session, ctx))
                await asyncio.to_thread(Path(export_to).write_bytes, bundle)
    finally:
        await runtime.dispose()
    return {"request_id": str(request.id), "report": report, "signature": done.signature}


@main.command("eval")
@click.option(
    "--set",
    "set_path",
    required=True,
    help="Evaluation set (a JSON file), or `example` for the set shipped with Bulwark.",
)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Bulwark API.")
@click.option(
    "--api-key",
    envvar="BULWARK_EVAL_API_KEY",
    required=True,
    help="A tenant API key (or BULWARK_EVAL_API_KEY); the set's documents go to its tenant.",
)
@click.option("--tiers", default="small,mid,frontier", show_default=True)
@click.option(
    "--out",
    default="var/eval",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for report.json, report.md and frontier.png.",
)
def eval_command(set_path: str, url: str, api_key: str, tiers: str, out: Path) -> None:
    """Run an evaluation set through the chat pipeline per tier: quality, cost, latency."""
    from app.eval.adapters import BulwarkApi
    from app.eval.report import write_report
    from app.eval.runner import run_eval
    from app.eval.sets import EXAMPLE, EvalFailed, load
    from kernel.errors import AppError

    try:
        eval_set = load(EXAMPLE if set_path == "example" else Path(set_path))
    except AppError as invalid:
        raise click.ClickException(invalid.detail) from None
    chosen = [tier.strip() for tier in tiers.split(",") if tier.strip()]

    async def run() -> Any:
        async with BulwarkApi.connect(url, api_key) as api:
            return await run_eval(api, eval_set, chosen)

    try:
        report = asyncio.run(run())
    except EvalFailed as failed:
        raise click.ClickException(str(failed)) from None
    paths = write_report(report, out)
    click.echo(
        json.dumps(
            {
                "set": report.set_name,
                "tiers": [
                    {
                        "tier": t.tier,
                        "quality": t.quality,
                        "cost_usd_per_case": t.cost_usd_per_case,
                        "latency_ms_p50": t.latency_ms_p50,
                        "errors": t.errors,
                        "on_frontier": t.on_frontier,
                    }
                    for t in report.tiers
                ],
                "report": {kind: str(path) for kind, path in paths.items()},
            },
            indent=2,
        )
    )


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


if __name__ == "__main__":
    main()
