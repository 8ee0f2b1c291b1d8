"""A user's own code for a run: snapshotted by digest, and importable on the engines for it.

A spec's ``code:`` names directories and files of the user's project (a
package ``myproj/``, a module ``features.py``). The driver snapshots them
into ``<workdir>/code/<digest>/`` (each entry at the top, by its name, so
``myproj/features.py`` imports as ``myproj.features``), with a SHA256SUMS
file so a host's copy is verified as the folds are; the same code gives the
same digest and is never copied twice. An engine `activate`s the run's
snapshot before a task: the snapshot goes first on its import path, and the
modules of the snapshot it used before are dropped from ``sys.modules``, so
two runs with two versions of the user's code never mix in one engine. The
driver does the same to check the spec's import paths and build its
estimator.

Runs everywhere (the driver and every engine); the standard library only.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
from pathlib import Path

from runtime.digestdir import SUMS, publish, sha256_file, write_sums

#: The snapshots' folder under a host's workdir.
CODE_SUBDIR = "code"
#: What is not code: caches and hidden files are left out of a snapshot.
_SKIPPED_DIRS = {"__pycache__"}

#: The snapshot this process imports user code from (None: none yet).
_active: str | None = None


def files_of(entries: list[Path]) -> list[tuple[str, Path]]:
    """Every file of the entries as (its name in the snapshot, its path), sorted."""
    out = []
    for entry in entries:
        if entry.is_file():
            out.append((entry.name, entry))
            continue
        for root, dirs, names in os.walk(entry):
            dirs[:] = sorted(
                d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")
            )
            for name in sorted(names):
                if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                    continue
                path = Path(root, name)
                out.append((str(Path(entry.name, path.relative_to(entry))), path))
    return sorted(out)


def _hashed(entries: list[Path]) -> list[tuple[str, Path, str]]:
    """Every file of the entries as (name in the snapshot, path, hex sha256), read once."""
    return [(name, path, sha256_file(path)) for name, path in files_of(entries)]


def _digest_of(files: list[tuple[str, Path, str]]) -> str:
    h = hashlib.sha256()
    for name, _, sha in files:
        h.update(name.encode() + b"\0")
        h.update(sha.encode() + b"\n")
    return h.hexdigest()[:16]


def code_digest(entries: list[Path]) -> str:
    """The digest of the entries' names and bytes: equal code, equal digest."""
    return _digest_of(_hashed(entries))


def snapshot(entries: list[Path], workdir: str | os.PathLike) -> Path:
    """The entries copied to ``<workdir>/code/<digest>/`` (once per digest).

    Published whole or not at all (`runtime.digestdir`); its
    SHA256SUMS lists every file, with the checksums the digest was made of.

    Returns
    -------
    Path
        The snapshot directory.
    """
    files = _hashed(entries)
    dest = Path(workdir, CODE_SUBDIR, _digest_of(files))
    if (dest / SUMS).is_file():
        return dest

    def fill(tmp: Path) -> None:
        for name, path, _ in files:
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        write_sums(tmp, [(sha, name) for name, _, sha in files])

    return publish(dest, fill)


def activate(path: str | os.PathLike | None) -> None:
    """Import the user's code from `path` (a snapshot, or a driver's folder) from now on.

    The snapshot activated before leaves the import path and its modules
    leave ``sys.modules``; None only does that. Activating the active one
    does nothing (the common case: every task of a run).
    """
    global _active
    new = None if path is None else str(Path(path).resolve())
    if new == _active:
        return
    if _active is not None:
        while _active in sys.path:
            sys.path.remove(_active)
        prefix = _active + os.sep
        for name, mod in list(sys.modules.items()):
            file = getattr(mod, "__file__", None) or ""
            paths = list(getattr(mod, "__path__", None) or [])
            if file.startswith(prefix) or any(str(p).startswith(prefix) for p in paths):
                del sys.modules[name]
    if new is not None:
        sys.path.insert(0, new)
    _active = new
    importlib.invalidate_caches()


def active() -> str | None:
    """The snapshot this process imports user code from, if any."""
    return _active
