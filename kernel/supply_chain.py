"""Run-time supply-chain checks: the model files Bulwark loads are the ones it pins, and a
dependency whose internals one adapter reaches into is a version that adapter was tested with.

Model files are compared with SHA-256 values kept in Bulwark's own code, beside the adapter that
loads each one (never with a hash shipped by the package that ships the file: a swapped package
brings its own). A file is hashed streaming, at most once per process, just before its first
load; a file replaced afterwards (another inode, size or modification time) is hashed again.
``bench/model_pins.py`` on the 2-core VM (files in the page cache, other work running): 21 ms
for the 23 MB MiniLM ONNX, 18 ms for the 26 files (15 MB) of the spaCy model, 99 ms for the
98 MB SmolLM2 GGUF (about 1 GB/s); once per process, at first use, not at start-up.

Install-time pins are ``requirements/lock.txt`` (every distribution, by hash; ``make lock``);
these checks hold the files that are loaded, whatever put them on disk.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import structlog
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from kernel.errors import ServiceUnavailable

log = structlog.get_logger("bulwark.supply_chain")


class ModelFileMismatch(ServiceUnavailable):
    """A model file is not the one Bulwark pins: it is refused before it is loaded. A request
    that needs it answers 503 with a generic detail; the file and both hashes go to the log and
    to ``str()`` of the error."""

    code = "model_file_mismatch"

    def __init__(self, message: str) -> None:
        super().__init__("A model file failed its integrity check.")
        self.message = message
        log.error("model file refused", reason=message)

    def __str__(self) -> str:
        return self.message


class UnsupportedDependency(RuntimeError):
    """An adapter that uses internals of a dependency found a version it was not tested with."""


_lock = threading.Lock()
# (real path, device, inode, size, mtime) -> hex digest: a file is hashed once per process.
_digests: dict[tuple[str, int, int, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """The file's SHA-256 (hex), read in chunks; cached per file identity for the process."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _digests.get(key)
    if cached is not None:
        return cached
    with open(real, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    with _lock:
        _digests[key] = digest
    return digest


def verify_file(path: Path, expected: str, *, what: str) -> Path:
    """``path`` if its SHA-256 is ``expected``; otherwise ``ModelFileMismatch`` naming the file
    and both hashes."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ModelFileMismatch(
            f"{what}: {path} has sha256 {actual}, but Bulwark pins {expected.lower()}; "
            "refusing to load it (reinstall from requirements/lock.txt)"
        )
    return path


def verify_tree(root: Path, manifest: Mapping[str, str], *, what: str) -> Path:
    """``root`` if it holds exactly the files of ``manifest`` (relative POSIX path -> SHA-256),
    each with its pinned hash: a changed, missing or added file is refused."""
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}
    missing, extra = sorted(set(manifest) - found), sorted(found - set(manifest))
    if missing or extra:
        raise ModelFileMismatch(
            f"{what}: {root} does not hold the pinned files (missing {missing}, unexpected "
            f"{extra}); refusing to load it (reinstall from requirements/lock.txt)"
        )
    for name, expected in sorted(manifest.items()):
        verify_file(root / name, expected, what=what)
    return root


def require_version(distribution: str, supported: str, *, user: str) -> str:
    """The installed version of ``distribution`` if it is in ``supported`` (a PEP 440 range),
    otherwise ``UnsupportedDependency``: ``user`` relies on internals of that release range."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:
        raise UnsupportedDependency(
            f"{user} needs {distribution} {supported}: not installed"
        ) from None
    if not SpecifierSet(supported).contains(Version(installed), prereleases=True):
        raise UnsupportedDependency(
            f"{user} uses internals of {distribution} and was tested with {supported}; "
            f"{installed} is installed. Check the adapter against this release and widen the "
            "range, or install from requirements/lock.txt"
        )
    return installed
