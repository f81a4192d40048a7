"""A small AST lint for the semantic rules of docs/ARCHITECTURE.md that import-linter cannot
express (who may build a TenantContext, where queries and vendor clients live)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "app",
    "kernel",
    "chat",
    "compliance",
    "tenants",
    "auth",
    "retrieval",
    "dlp",
    "audit",
    "residency",
    "gateway",
    "keys",
)
# Where TenantContext is built: auth's builders and the kernel's SystemAuthority.
BUILDERS = ("auth/context.py", "kernel/tenancy.py")
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


def modules(*, include_bench: bool = False) -> Iterator[tuple[Path, ast.Module]]:
    for package in (*PACKAGES, "bench") if include_bench else PACKAGES:
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


def test_nothing_imports_the_composition_root() -> None:
    """``app`` composes the packages (it reads the runtime and provides each route's services
    by name); no package below it imports it. Tests and benchmarks may."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("app", "tests", "bench") or any(
            part.startswith(".") for part in relative.parts
        ):
            continue
        tree = ast.parse(path.read_text(), str(path))
        offenders += [
            f"{relative}: {module}"
            for module, _ in imported(tree)
            if module == "app" or module.startswith("app.")
        ]
    assert offenders == []


def test_only_auth_builds_tenant_contexts() -> None:
    offenders = [
        str(path)
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "TenantContext"
        and str(path) not in BUILDERS
    ]
    assert offenders == []


def test_only_auth_imports_the_kernels_context_builders() -> None:
    """``kernel.tenancy`` keeps its builders private to itself and to ``auth.context``."""
    offenders = [
        f"{path}: {name}"
        for path, tree in modules(include_bench=True)
        for module, name in imported(tree)
        if module == "kernel.tenancy"
        and name is not None
        and name.startswith("_")
        and str(path) != "auth/context.py"
    ]
    assert offenders == []


def _names(node: ast.AST) -> set[str]:
    """Every plain name and attribute name used inside ``node``."""
    found: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            found.add(inner.id)
        elif isinstance(inner, ast.Attribute):
            found.add(inner.attr)
    return found


def test_only_auth_mints_system_contexts_and_only_the_root_grants_the_authority() -> None:
    """``system_context`` stays inside ``auth/``; everything else acts on a tenant as the system
    only through the ``SystemAuthority`` the composition root grants and hands on."""
    minted, granted = [], []
    for path, tree in modules(include_bench=True):
        inside_auth = path.parts[0] == "auth"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not inside_auth:
                minted += [f"{path}: import" for a in node.names if a.name == "system_context"]
            elif isinstance(node, ast.Name | ast.Attribute) and not inside_auth:
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name == "system_context":
                    minted.append(f"{path}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and str(path) not in ("app/runtime.py", *BUILDERS)
            ):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id
                owner = func.value if isinstance(func, ast.Attribute) else None
                if called == "SystemAuthority" or (
                    called == "grant"
                    and isinstance(owner, ast.Name)
                    and owner.id == "SystemAuthority"
                ):
                    granted.append(f"{path}:{node.lineno}")
    assert minted == []
    assert granted == []


def test_tenant_contexts_are_not_copied_with_changes_outside_auth() -> None:
    """A context changes only through auth's own methods (``with_epoch``): no
    ``dataclasses.replace`` or ``copy`` of one elsewhere (the constructor check refuses it at run
    time too)."""
    offenders = []
    for path, tree in modules(include_bench=True):
        if path.parts[0] == "auth" or str(path) == "kernel/tenancy.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("replace", "copy", "deepcopy", "with_epoch") and any(
                "ctx" in name.lower() or "context" in name.lower() for name in _names(node.args[0])
            ):
                offenders.append(f"{path}:{node.lineno}")
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
        and str(path) != "kernel/errors.py"
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
        and str(path) not in {"kernel/settings.py", "app/cli.py"}
    ]
    assert reads_regions == []
