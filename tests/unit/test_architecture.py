"""A small AST lint for the layering and tenancy rules in HOUSE_STYLE.md."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "tenants", "auth", "retrieval", "dlp", "audit", "residency", "gateway", "keys")
VENDOR_CLIENTS = (
    "qdrant_client",
    "qdrant_edge",
    "boto3",
    "botocore",
    "presidio_analyzer",
    "presidio_anonymizer",
    "onelogin",
    "authlib",
    "joserfc",
    "httpx",
    "aiohttp",
    "onnxruntime",
    "tokenizers",
)
QUERY_BUILDERS = {"select", "update", "delete", "insert"}


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> Iterator[tuple[str, str | None]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node.module, alias.name


def test_only_auth_builds_tenant_contexts() -> None:
    offenders = [
        str(path)
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "TenantContext"
        and str(path) != "auth/context.py"
    ]
    assert offenders == []


def test_queries_are_built_only_in_repositories() -> None:
    offenders = [
        f"{path}: {name}"
        for path, tree in modules()
        for module, name in imported(tree)
        if module.startswith("sqlalchemy")
        and name in QUERY_BUILDERS
        and path.name != "repositories.py"
    ]
    assert offenders == []


def test_vendor_clients_only_in_adapters() -> None:
    offenders = [
        f"{path}: {module}"
        for path, tree in modules()
        for module, _ in imported(tree)
        if module.split(".")[0] in VENDOR_CLIENTS
        and "adapters" not in path.parts
        and path.stem != "adapters"
    ]
    assert offenders == []


def test_layers_below_controllers_know_nothing_of_http() -> None:
    lower = {
        "services.py",
        "repositories.py",
        "models.py",
        "schemas.py",
        "apikeys.py",
        "context.py",
        "errors.py",
    }
    offenders = [
        f"{path}: {module}"
        for path, tree in modules()
        for module, _ in imported(tree)
        if module.startswith("litestar")
        and (
            path.name in lower
            or (path.parts[0] in ("residency", "keys") and path.name != "controllers.py")
        )
        and str(path) != "app/errors.py"
    ]
    assert offenders == []


def test_only_residency_opens_region_stores() -> None:
    """Every call site that touches tenant data goes through the region registry."""
    allowed = {"residency", "migrations"}
    offenders = [
        f"{path}: {module}.{name}"
        for path, tree in modules()
        for module, name in imported(tree)
        if path.parts[0] not in allowed
        and (
            name in {"create_async_engine", "create_engine", "LocalBlobStore", "S3BlobStore"}
            or module.startswith("residency.adapters")
        )
    ]
    assert offenders == []
    reads_regions = [
        str(path)
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "regions"
        and path.parts[0] not in allowed
        and str(path) not in {"app/settings.py", "app/cli.py"}
    ]
    assert reads_regions == []
