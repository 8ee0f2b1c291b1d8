"""Process, file and name helpers of the namespace test cluster (run, signal, wait, keys).

Runs on the test machine, as root (see `fleetcv.devtools.testcluster`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from fleetcv.devtools.testcluster.settings import (
    _PREFIX_RE,
    _SUBNET_RE,
    DEFAULT_BASE_DIR,
    HOST_IP_OFFSET,
    IFNAME_MAX,
    LOG_TAIL_LINES,
    POLL_INTERVAL,
    STATE_FILE,
)
from runtime.pids import pid_alive


def _run(
    cmd: list[str], check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing text output; raise with stderr on failure."""
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {shlex.join(cmd)}\n"
            f"{proc.stderr.strip()}"
        )
    return proc


def _link_exists(name: str) -> bool:
    return _run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def _netns_list() -> set[str]:
    # Output lines look like "fcv1 (id: 0)" or just "fcv1".
    out = _run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _netns_pids(netns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process.

    PID 1 on the test machines does not reap orphans, so a killed process can
    linger as a zombie: ``os.kill(pid, 0)`` alone would call it alive.
    """
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our own child (sshd started by up() in-process).
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return pid_alive(pid)


def _wait_dead(pids: list[int], timeout: float) -> list[int]:
    """Wait until all ``pids`` are dead; return those still alive."""
    deadline = time.monotonic() + timeout
    remaining = [p for p in pids if _alive(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        remaining = [p for p in remaining if _alive(p)]
    return remaining


def _signal(pid: int, sig: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _write_private(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path`` with mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
    os.replace(tmp, path)


def _write_state(state: dict) -> None:
    # Written after every resource we create so that down() can clean up
    # even if this process dies half-way through up().
    _write_private(
        Path(state["base_dir"]) / STATE_FILE, json.dumps(state, indent=2) + "\n"
    )


def _keygen(path: Path, comment: str) -> None:
    # ssh-keygen asks before overwriting; start from a clean slate instead.
    for p in (path, path.with_name(path.name + ".pub")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
    )


def _log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not path:
        return "(no log)"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _resolve_base_dir(base_dir: str | os.PathLike | None) -> Path:
    return (
        Path(base_dir if base_dir is not None else DEFAULT_BASE_DIR)
        .expanduser()
        .resolve()
    )


def _names(prefix: str, i: int) -> dict[str, str]:
    return {"name": f"{prefix}{i}", "veth": f"{prefix}v{i}", "peer": f"{prefix}p{i}"}


def _validate(n_hosts: int, prefix: str, subnet: str) -> None:
    if not isinstance(n_hosts, int) or n_hosts < 1:
        raise ValueError(f"n_hosts must be a positive int, got {n_hosts!r}")
    if HOST_IP_OFFSET + n_hosts > 254:
        raise ValueError(
            f"n_hosts={n_hosts} does not fit in a /24 after offset {HOST_IP_OFFSET}"
        )
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must match {_PREFIX_RE.pattern}, got {prefix!r}")
    longest = max(f"{prefix}br0", *_names(prefix, n_hosts).values(), key=len)
    if len(longest) > IFNAME_MAX:
        raise ValueError(
            f"prefix {prefix!r} too long: interface name {longest!r} "
            f"exceeds {IFNAME_MAX} chars"
        )
    m = _SUBNET_RE.match(subnet)
    if not m or any(int(part) > 255 for part in m.groups()):
        raise ValueError(f"subnet must be three octets like '10.203.0', got {subnet!r}")


# ---------------------------------------------------------------------------
# public API
