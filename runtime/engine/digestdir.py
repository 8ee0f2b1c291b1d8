"""Folders named by the digest of what they hold, published whole, with SHA256SUMS.

A run's folds (`runtime.engine.folds`), its code snapshot
(`runtime.engine.usercode`) and its requirements' wheelhouse
(`runtime.dispatch.requirements`) are each written into a temporary sibling
and renamed to ``<digest>/``: a crash never leaves a half-written folder
that a later run would take as complete, and two processes making the same
digest keep one. Each holds a SHA256SUMS file in `sha256sum -c` form, so a
remote host verifies its copy with coreutils alone (fabfile `push_host`).

Runs everywhere (the driver and every engine); the standard library only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

#: The checksums of a digest folder, in `sha256sum -c` form (relative paths).
SUMS = "SHA256SUMS"
#: Read size for hashing large files.
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_sums(folder: Path, sums: Iterable[tuple[str, str]]) -> None:
    """SHA256SUMS of (hex sha256, relative name) pairs."""
    (folder / SUMS).write_text("".join(f"{h}  {name}\n" for h, name in sums))


def publish(dest: Path, fill: Callable[[Path], None]) -> Path:
    """Make `dest` by `fill(tmp)` into a temporary sibling, then a rename.

    If another process published `dest` first, its folder is kept and ours
    dropped; if `fill` raises, nothing is left behind.

    Returns
    -------
    Path
        `dest`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(dest)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
