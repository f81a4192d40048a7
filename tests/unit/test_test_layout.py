"""The tests' own layout: shared helpers live in ``tests/support/``, fixtures in ``conftest.py``
files, and no module under ``tests/`` imports a conftest or a ``test_*`` module (issue #25)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def is_test_or_conftest(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def is_module(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def package_of(path: Path, level: int) -> str:
    """The package a relative import of ``level`` dots in ``path`` starts from."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[: len(parts) - level])


def imported_modules(path: Path, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every module an import statement in ``tree`` loads, local imports included; for
    ``from package import name``, also ``package.name`` where that is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(p for p in (package_of(path, node.level), base) if p)
            yield node.lineno, base
            for alias in node.names:
                if is_module(f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}"


def test_no_test_module_imports_a_conftest_or_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_modules(path, ast.parse(path.read_text(), str(path)))
        if is_test_or_conftest(module)
    ]
    assert not offenders, "move the shared helper to tests/support/:\n" + "\n".join(offenders)
