"""Folders named by the digest of what they hold, published whole, with SHA256SUMS.

A run's folds (`runtime.folds`), its code snapshot
(`runtime.usercode`) and its requirements' wheelhouse
(`fleetcv.dispatch.requirements`) are each written into a temporary sibling
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

from runtime.pids import pid_alive

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

    Every file is made private (0600, the folder 0700: folds are pickles,
    and whoever can write them runs code in the engines) and fsynced, and
    so is the folder, before the rename publishes it: a crash never leaves
    a published folder with missing bytes. If another process published
    `dest` first, its folder is kept and ours dropped; if `fill` raises,
    nothing is left behind. Temporary folders of processes that died
    (killed mid-write) are removed on the way.

    Returns
    -------
    Path
        `dest`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(dest.parent)
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f".{dest.name}-{os.getpid()}{_TMP_MARK}", dir=dest.parent
        )
    )
    try:
        fill(tmp)
        _seal(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
        else:
            _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


#: Between the creator's pid and mkdtemp's random part in a temporary folder's name.
_TMP_MARK = "-tmp-"


def remove_dead_temps(parent: Path) -> int:
    """Remove the temporary folders in `parent` whose creating process is gone."""
    removed = 0
    for p in parent.glob(f".*{_TMP_MARK}*"):
        pid = p.name.rsplit(_TMP_MARK, 1)[0].rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def _seal(folder: Path) -> None:
    """Owner-only modes and everything on disk, files first, then the folders."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o600)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
            _fsync_dir(Path(root, name))
    os.chmod(folder, 0o700)
    _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
