"""The ``bulwark`` command line."""

from __future__ import annotations

import asyncio
import json

import click

from app import __version__
from app.settings import get_settings


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


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


if __name__ == "__main__":
    main()
