"""The ``bulwark`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from app import __version__
from app.settings import Settings, get_settings


@click.group()
def main() -> None:
    """Bulwark: multi-tenant enterprise RAG backend."""


@main.command()
@click.option("--host", default=None, help="Bind address (default from settings: 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default from settings: 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the API."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
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

    from app.observability import configure_logging
    from app.runtime import Runtime

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
def demo() -> None:
    """Create (or find) the demo tenants and print their credentials."""
    from app.demo import credentials_path, seed_demo

    settings = get_settings()
    output = asyncio.run(seed_demo(settings))
    click.echo(json.dumps(output, indent=2))
    click.echo(f"written to {credentials_path(settings)}", err=True)


@main.group()
def tenants() -> None:
    """Tenant lifecycle jobs."""


@tenants.command("purge")
def tenants_purge() -> None:
    """Crypto-shred every deleted tenant whose grace period has passed."""
    from app.runtime import Runtime
    from tenants.services import purge_due_tenants

    async def run() -> list[str]:
        runtime = Runtime.build(get_settings())
        try:
            ids = await purge_due_tenants(runtime.control, runtime.registry, runtime.keyring)
        finally:
            await runtime.dispose()
        return [str(tenant_id) for tenant_id in ids]

    click.echo(json.dumps({"purged": asyncio.run(run())}))


@main.group()
def kms() -> None:
    """The embedded default's local KMS (a key file per region)."""


def _local_kms(region: str) -> Any:
    from pathlib import Path

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
    from auth.context import TenantRoute, system_context
    from tenants.repositories import TenantRepository

    runtime = Runtime.build(settings)
    try:
        async with runtime.control.transaction(None) as session:
            tenant = await TenantRepository(session).get_by_slug(slug)
            if tenant is None:
                raise click.BadParameter(f"no tenant with slug {slug!r}", param_hint="--tenant")
            route = TenantRoute.of(tenant)
        # A system context: the verification reads this one tenant's chain, in its own region.
        ctx = system_context(route)
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


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


if __name__ == "__main__":
    main()
