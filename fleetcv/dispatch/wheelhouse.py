"""The wheelhouse the engine hosts install from: the pinned dependencies and fleetcv's own wheel.

Runs on the laptop, in this checkout; touches no host (fabfile.py's
`install` rsyncs the wheelhouse and installs it offline on each host). The
engine hosts' pins are pyproject.toml's `dependencies` (no `laptop` extra);
the fleetcv wheel is built from this checkout every time, and
`wheelhouse_digest` says whether a host's venv is up to date.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from fleetcv.errors import HostError

#: This checkout, whose pyproject.toml, runtime/ and fleetcv/ the wheel is built from.
REPO = Path(__file__).resolve().parents[2]
#: What goes into the fleetcv wheel's build: the package and its metadata.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "runtime", "fleetcv")
#: The wheelhouse's list of the dependency pins, also the sign that its
#: dependency wheels are complete.
WHEELHOUSE_REQS = "requirements.txt"
#: How long one pip call here may take (building every dependency's wheel).
PIP_TIMEOUT = 1800.0


def engine_requirements() -> list[str]:
    """The pinned requirements an engine host needs.

    Returns
    -------
    list of str
        pyproject.toml's ``[project] dependencies``: the package's own needs,
        without the ``laptop`` extra (Fabric, Invoke, plots, EC2).
    """
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _pip(*args: str) -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise HostError(
            f"pip {args[0]} on this machine did not finish in {PIP_TIMEOUT:g} s. "
            "Fix: check this machine's access to the package index, then retry"
        ) from None
    if proc.returncode:
        raise HostError(
            f"pip {args[0]} failed on this machine (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}"
        )


def build_fleetcv_wheel(dest: str | os.PathLike) -> Path:
    """Build this checkout's fleetcv wheel into `dest`, replacing any other fleetcv wheel there.

    Built from a temporary copy of the package sources, so the build leaves
    nothing (build/, egg-info) in the checkout and packs nothing but them.

    Parameters
    ----------
    dest : str or os.PathLike
        The wheelhouse folder.

    Returns
    -------
    Path
        The new wheel.

    Raises
    ------
    HostError
        If pip cannot build the wheel.
    """
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="fleetcv-wheel-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for name in WHEEL_SOURCES:
            if (REPO / name).is_dir():
                shutil.copytree(
                    REPO / name,
                    src / name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                shutil.copy2(REPO / name, src / name)
        # --no-deps: the dependencies come from the wheelhouse's own pins.
        _pip("wheel", "--no-deps", "-w", str(out), str(src))
        (wheel,) = out.glob("fleetcv-*.whl")
        for old in dest.glob("fleetcv-*.whl"):
            old.unlink()
        return Path(shutil.move(wheel, dest / wheel.name))


def fleetcv_wheel(wheelhouse: str | os.PathLike) -> Path:
    """The one fleetcv wheel in a wheelhouse.

    Parameters
    ----------
    wheelhouse : str or os.PathLike
        A folder of wheels (`build_wheelhouse`, or one given to hosts.install).

    Returns
    -------
    Path
        Its ``fleetcv-*.whl``.

    Raises
    ------
    SshError
        If it holds none or several (which one to install would be a guess).
    """
    wheels = sorted(Path(wheelhouse).glob("fleetcv-*.whl"))
    if len(wheels) != 1:
        found = ", ".join(w.name for w in wheels) or "none"
        raise HostError(
            f"{wheelhouse}: expected exactly one fleetcv wheel, found {found}. Fix: "
            "invoke hosts.install without --wheelhouse (builds one), or keep one "
            f"wheel built with `pip wheel --no-deps -w {wheelhouse} .`"
        )
    return wheels[0]


def wheel_version(wheel: str | os.PathLike) -> str:
    """The version in a wheel's file name (``fleetcv-0.4.0-py3-none-any.whl`` -> ``0.4.0``)."""
    return Path(wheel).name.split("-")[1]


def wheelhouse_digest(wheelhouse: str | os.PathLike) -> str:
    """What a host's venv must match to be up to date: the pins and the fleetcv wheel.

    The wheel counts by its RECORD (the sha256 of every file in it) rather
    than by its bytes, which change with the build's timestamps: the same
    code makes the same digest, any change to it (a new version or not)
    makes a new one, so hosts.install reinstalls exactly when needed.

    Parameters
    ----------
    wheelhouse : str or os.PathLike
        The wheelhouse.

    Returns
    -------
    str
        A sha256 hex digest.
    """
    wheel = fleetcv_wheel(wheelhouse)
    with zipfile.ZipFile(wheel) as z:
        (record,) = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
        record_bytes = z.read(record)
    h = hashlib.sha256((Path(wheelhouse) / WHEELHOUSE_REQS).read_bytes())
    h.update(wheel.name.encode() + b"\0" + record_bytes)
    return h.hexdigest()


def build_wheelhouse(dest: str | os.PathLike | None = None) -> Path:
    """Build the wheels an engine host installs: the pinned dependencies and fleetcv itself.

    The dependency wheels are reused when the folder already holds them for
    the same pins; the fleetcv wheel is rebuilt every time from this checkout
    (a second or two), since its code changes without the pins changing.

    Parameters
    ----------
    dest : str or os.PathLike, optional
        The folder; default ``~/.cache/fleetcv/wheelhouse-<digest of the pins>``.

    Returns
    -------
    Path
        The wheelhouse: the wheels, `WHEELHOUSE_REQS` and one fleetcv wheel.

    Raises
    ------
    HostError
        If pip cannot build a wheel.
    """
    reqs = engine_requirements()
    digest = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:16]
    path = Path(dest or os.path.expanduser(f"~/.cache/fleetcv/wheelhouse-{digest}"))
    marker = path / WHEELHOUSE_REQS
    if not (marker.exists() and marker.read_text().splitlines() == reqs):
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(reqs) + "\n")
        try:
            _pip("wheel", "-w", str(path), "-r", f.name)
        finally:
            os.unlink(f.name)
        marker.write_text("\n".join(reqs) + "\n")
    build_fleetcv_wheel(path)
    return path
