"""A run's extra packages (a spec's `requirements:`), installed on every host before it.

Runs on the driver. `prepare` makes a wheelhouse of the requirement lines on
this machine (`pip wheel`, dependencies included, so the hosts install
offline, as `invoke hosts.install` does) under ``<workdir>/reqs/<digest>/``,
once per set of requirements; the run pushes it with its folds; `install`
has one engine per host pip-install from it, offline, constrained by
fleetcv's own pins (pip installs nothing when all is there). A requirement that this
machine cannot get, or that a host cannot install, stops the run before
any task is submitted, naming the requirement or the host.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fleetcv.errors import ConfigError, HostError
from runtime.digestdir import SUMS, publish, sha256_file, write_sums
from runtime.worker import CONSTRAINTS_FILE, REQUIREMENTS_FILE
from runtime.worker import install_requirements as install_on_engine

#: The wheelhouses' folder under a host's workdir.
REQS_SUBDIR = "reqs"
#: How long pip may take, here (download and build) and on a host.
PIP_TIMEOUT = 900.0


def requirements_digest(lines: tuple[str, ...]) -> str:
    """The digest of the lines (and of the bytes of the wheels they name)."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode() + b"\n")
        if line.endswith(".whl") and Path(line).is_file():
            h.update(sha256_file(line).encode())
    return h.hexdigest()[:16]


def prepare(lines: tuple[str, ...], workdir: str | os.PathLike, log=print) -> Path:
    """The wheelhouse of `lines` under ``<workdir>/reqs/<digest>/`` (made once).

    Raises
    ------
    ConfigError
        When pip cannot get a requirement on this machine (its message).
    """
    dest = Path(workdir, REQS_SUBDIR, requirements_digest(lines))
    if (dest / SUMS).is_file():
        return dest
    log(f"requirements: pip wheel {' '.join(Path(x).name for x in lines)}")
    return publish(dest, lambda tmp: _fill_wheelhouse(tmp, lines))


def _fill_wheelhouse(tmp: Path, lines: tuple[str, ...]) -> None:
    """The wheels of `lines` (and their dependencies), what to install, the pins, the sums."""
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "--no-color",
                "-q",
            ]
            # The hosts' Python decides what they can install, not this one's.
            + ["--ignore-requires-python", "--wheel-dir", str(tmp), *lines],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None or proc.returncode:
        why = "timed out" if proc is None else _tail(proc.stdout + proc.stderr)
        raise ConfigError(
            f"requirements: pip could not get {', '.join(lines)} on this machine: {why}. "
            "Fix: check the names and versions (this machine needs them too: pip "
            "install them here first)"
        )
    # What the hosts install: the lines, a wheel's path as its file name here.
    wanted = [Path(x).name if x.endswith(".whl") else x for x in lines]
    (tmp / REQUIREMENTS_FILE).write_text("\n".join(wanted) + "\n")
    # fleetcv's pins constrain the install: a requirement that needs other
    # versions of them fails on the host instead of changing its numbers.
    from fleetcv.dispatch.wheelhouse import engine_requirements

    (tmp / CONSTRAINTS_FILE).write_text("\n".join(engine_requirements()) + "\n")
    write_sums(tmp, [(sha256_file(p), p.name) for p in sorted(tmp.iterdir())])


def install(client, meta: dict, log: Callable[[str], None] = print) -> None:
    """Install the run's requirements on every host of the cluster (one engine each).

    Raises
    ------
    HostError
        Naming each host where pip failed, with pip's last lines.
    """
    from fleetcv.dispatch.probes import engines_by_host

    reqs = meta.get("requirements")
    if not reqs:
        return
    by_host = engines_by_host(client)
    ars = {
        h: client[eids[0]].apply_async(install_on_engine, reqs_ref=reqs["ref"])
        for h, eids in by_host.items()
    }
    failed = {}
    deadline = time.monotonic() + PIP_TIMEOUT  # the hosts install at once
    for host, ar in sorted(ars.items()):
        try:
            out = ar.get(timeout=max(1.0, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - a lost engine or a timeout: named
            failed[host] = f"{type(exc).__name__}: {exc}"
            continue
        if out["returncode"]:
            failed[host] = _tail(out["output"])
        elif out["installed"]:
            log(f"[{host}] requirements installed: {', '.join(reqs['lines'])}")
    if failed:
        raise HostError(
            "requirements: pip could not install "
            + "; ".join(f"on {h}: {why}" for h, why in failed.items())
            + ". Fix: a requirement these hosts can install (their Python, platform), "
            "or fewer hosts; no task was submitted"
        )


def _tail(output: str, n: int = 3) -> str:
    lines = [x for x in output.strip().splitlines() if x.strip()]
    return " | ".join(lines[-n:]) or "no output"
