"""Tearing the namespace test cluster down, by the pids and names its state file recorded.

Runs on the test machine, as root (see `fleetcv.devtools.testcluster`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from fleetcv.devtools.testcluster.procs import (
    _alive,
    _link_exists,
    _netns_list,
    _netns_pids,
    _resolve_base_dir,
    _run,
    _signal,
    _wait_dead,
)
from fleetcv.devtools.testcluster.settings import (
    KILL_GRACE,
    LINK_GONE_TIMEOUT,
    POLL_INTERVAL,
    STATE_FILE,
    TERM_GRACE,
)


def _is_ours(pid: int, host: dict) -> bool:
    """Whether ``pid`` is still the sshd that up() started for ``host``.

    Guards against killing an unrelated process that reused a stale pid from
    an old state file: the command line names our sshd_config, or the process
    lives in our namespace.
    """
    conf = host.get("sshd_config")
    try:
        cmdline = (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")
        )
    except OSError:
        return False
    if conf and conf in cmdline:
        return True
    netns = host.get("netns")
    if netns:
        with contextlib.suppress(OSError):
            ns = os.stat(f"/run/netns/{netns}")
            mine = os.stat(f"/proc/{pid}/ns/net")
            return (ns.st_dev, ns.st_ino) == (mine.st_dev, mine.st_ino)
    return False


def down(state_or_base_dir: dict | str | os.PathLike | None) -> None:
    """Tear down a cluster created by :func:`up`.

    Kills the recorded sshd process groups (by pid, after checking the pid is
    still ours) and then every process still inside each host namespace (for
    example engines started over SSH), deletes the namespaces, veths and the
    bridge, and removes the state file.  Safe to call repeatedly and on
    partially created clusters; every step is attempted even if an earlier one
    fails.

    Parameters
    ----------
    state_or_base_dir : dict or str or os.PathLike or None
        The state returned by :func:`up`, or the ``base_dir`` holding its
        state file (``None`` means the default base dir).  A base dir with no
        state file means there is nothing to do.

    Raises
    ------
    RuntimeError
        After all steps ran, if some of them failed; the state file is then
        kept so that ``down`` can be retried.
    """
    state = _load_state(state_or_base_dir)
    if state is None:
        return
    errors: list[str] = []
    hosts = [h for h in state.get("hosts") or [] if isinstance(h, dict)]
    existing_ns = _netns_list()
    sshd_pids = _term_sshds(hosts, errors)
    _kill_netns_processes(hosts, existing_ns, sshd_pids, errors)
    _delete_network(state, hosts, existing_ns, errors)
    if errors:
        raise RuntimeError("testcluster down incomplete:\n  " + "\n  ".join(errors))
    base_dir = state.get("base_dir")
    if base_dir:
        with contextlib.suppress(FileNotFoundError):
            (Path(base_dir) / STATE_FILE).unlink()


def _load_state(state_or_base_dir: dict | str | os.PathLike | None) -> dict | None:
    """The state given, or read from the base dir's state file (None: no file)."""
    if isinstance(state_or_base_dir, dict):
        return state_or_base_dir
    path = _resolve_base_dir(state_or_base_dir) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _term_sshds(hosts: list[dict], errors: list[str]) -> list[int]:
    """SIGTERM our sshds, by recorded pid; the pids signalled."""
    # The whole process group, since each was started as a session leader.
    sshd_pids = []
    for host in hosts:
        pid = host.get("sshd_pid")
        if not pid:
            continue
        try:
            if _alive(pid) and _is_ours(pid, host):
                _signal(pid, signal.SIGTERM, group=os.getpgid(pid) == pid)
                sshd_pids.append(pid)
        except ProcessLookupError:
            pass  # died by itself meanwhile
        except OSError as exc:
            errors.append(f"{host.get('name')}: cannot signal sshd {pid}: {exc}")
    return sshd_pids


def _kill_netns_processes(
    hosts: list[dict], existing_ns: set[str], sshd_pids: list[int], errors: list[str]
) -> None:
    """TERM, then KILL, the sshds and everything else still inside the namespaces."""
    # Sessions, engines started with setsid nohup ...: whatever runs there.
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, KILL_GRACE)):
        pids = list(sshd_pids)
        for host in hosts:
            netns = host.get("netns")
            if netns in existing_ns:
                try:
                    pids += _netns_pids(netns)
                except (OSError, subprocess.SubprocessError) as exc:
                    errors.append(f"{netns}: cannot list pids: {exc}")
        pids = [p for p in dict.fromkeys(pids) if p != os.getpid() and _alive(p)]
        for pid in pids:
            try:
                _signal(pid, sig)
            except OSError as exc:
                errors.append(f"cannot signal {pid}: {exc}")
        left = _wait_dead(pids, grace)
        if not left:
            break
    else:
        errors.append(f"processes survived SIGKILL: {left}")


def _delete_network(
    state: dict, hosts: list[dict], existing_ns: set[str], errors: list[str]
) -> None:
    """Delete the namespaces, leftover host-side veths and the bridge."""
    # Deleting a namespace destroys the veth end inside it and hence the pair.
    for host in hosts:
        netns = host.get("netns")
        if netns and netns in existing_ns:
            res = _run(["ip", "netns", "delete", netns], check=False)
            if res.returncode != 0:
                errors.append(f"ip netns delete {netns}: {res.stderr.strip()}")
    # The kernel dismantles a deleted namespace asynchronously, so its veth
    # lingers for a moment: wait for that rather than race it, so that an
    # up() right after down() does not find the names still taken.
    veths = [h["veth"] for h in hosts if h.get("veth")]
    deadline = time.monotonic() + LINK_GONE_TIMEOUT
    while any(_link_exists(v) for v in veths) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    links = veths + ([state["bridge"]] if state.get("bridge") else [])
    for link in links:
        if not _link_exists(link):
            continue
        res = _run(["ip", "link", "delete", link], check=False)
        if res.returncode != 0 and _link_exists(link):
            errors.append(f"ip link delete {link}: {res.stderr.strip()}")
