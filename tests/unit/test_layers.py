"""The layer contract of docs/ARCHITECTURE.md holds: import-linter's contracts pass, every package
is in them, and the document's diagram is the one the contract and the imports give today."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Top-level directories that are not runtime packages of the layer stack.
OUTSIDE = {"tests", "bench", "migrations", "tools", "docs", "infra", "requirements"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_import_linter_contracts_pass() -> None:
    result = _run(str(Path(sys.executable).parent / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_every_package_is_in_the_layer_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = {
        package.strip()
        for layer in config["contracts"][0]["layers"]
        for package in layer.replace(":", "|").split("|")
    }
    packages = {
        path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name not in OUTSIDE
    }
    assert packages == layered == set(config["root_packages"])


def test_the_architecture_diagram_is_up_to_date() -> None:
    result = _run(sys.executable, "tools/architecture.py", "--check")
    assert result.returncode == 0, result.stderr
