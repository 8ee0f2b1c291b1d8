"""Refuse engines that run another fleetcv than this driver.

Runs on the driver, once the engines have registered and before anything is
pushed to them or submitted. Hosts import the fleetcv wheel installed in
their venv (`invoke hosts.install`), so a host installed from an older
checkout would evaluate tasks with older code: its results would not be the
results of this driver's version. Asking each engine costs one tiny task.
"""

from __future__ import annotations

from collections import defaultdict

from fleetcv.dispatch.runner import get_result
from fleetcv.errors import EngineVersionError, HostError
from runtime import __version__, engine_version

#: Seconds to wait for every engine to say its version: idle engines answer
#: at once, so this only bounds a wait on an engine that hangs.
VERSION_TIMEOUT = 30.0
#: What stands for the version of an engine that could not run
#: `engine_version` at all (a fleetcv from before it existed, or none).
UNKNOWN = "unknown (older than 0.4.0, or not installed)"


def _ids(eids: list[int]) -> str:
    return f"engine{'s' if len(eids) > 1 else ''} {', '.join(map(str, eids))}"


def check_engine_versions(
    client,
    timeout: float = VERSION_TIMEOUT,
    hosts_file: str | None = None,
    expected: str = __version__,
    local: frozenset[str] | set[str] = frozenset(),
) -> dict[int, str]:
    """Check that every engine runs this driver's fleetcv version.

    One `apply_async` per engine (`runtime.engine_version`), all sent
    at once, then a wait of at most `timeout` seconds for all of them. An
    engine that dies meanwhile is left out: losing engines is the task
    runner's business, not a version mismatch.

    Parameters
    ----------
    client : ipyparallel.Client
        A client connected to the cluster, its engines registered.
    timeout : float
        Seconds to wait for all the answers together.
    hosts_file : str, optional
        The hosts file, named in the fix (default: none, i.e. ./hosts.yml or
        FLEETCV_HOSTS, as every task reads).
    expected : str
        The version the engines must run: this driver's.
    local : set of str
        Names of the hosts that are this machine: their engines run this
        checkout once restarted, so their fix is a restart, not an install.

    Returns
    -------
    dict of int to str
        The version of each engine that answered (all equal to `expected`).

    Raises
    ------
    EngineVersionError
        If an engine runs another version, or cannot say which; the message
        names each host, its engines and their version, this driver's
        version, and the fix (`invoke hosts.install`, then restart the
        engines).
    HostError
        If an engine neither answers nor dies within `timeout` seconds.
    """
    found = _ask_engines(client, timeout)
    wrong: dict[tuple[str, str], list[int]] = defaultdict(list)
    for eid, (host, version) in sorted(found.items()):
        if version != expected:
            wrong[(host, version)].append(eid)
    if wrong:
        parts = [
            f"engines on {host} ({_ids(eids)}) run fleetcv {version}"
            for (host, version), eids in sorted(wrong.items())
        ]
        hf = f" --hosts-file {hosts_file}" if hosts_file else ""
        remote = sorted({host for host, _ in wrong} - set(local))
        install = (
            f"invoke hosts.install{hf} --only {','.join(remote)}, then "
            if remote
            else ""
        )
        raise EngineVersionError(
            f"{'; '.join(parts)}, this driver is {expected}. Fix: {install}"
            f"invoke cluster.stop{hf} and invoke cluster.start{hf}"
        )
    return {eid: version for eid, (_, version) in found.items()}


def _ask_engines(client, timeout: float) -> dict[int, tuple[str, str]]:
    """(host, fleetcv version) of every live engine, asked all at once."""
    # ipyparallel is loaded by then (a client exists); see runner._collect_loop.
    from ipyparallel.error import EngineError, RemoteError

    ars = {eid: client[eid].apply_async(engine_version) for eid in sorted(client.ids)}
    client.wait(list(ars.values()), timeout=timeout)
    silent = [eid for eid, ar in ars.items() if not ar.ready()]
    if silent:
        raise HostError(
            f"{_ids(silent)} did not say their fleetcv version within {timeout:g} s. "
            "Fix: check them with invoke cluster.status, restart them with "
            "invoke cluster.stop and invoke cluster.start"
        )
    found: dict[int, tuple[str, str]] = {}
    older = []
    for eid, ar in ars.items():
        try:
            info = get_result(ar)
        except EngineError:
            continue  # died meanwhile: the task runner's business
        except RemoteError:
            older.append(eid)
            continue
        found[eid] = (
            info.get("host") or f"engine {eid}",
            info.get("fleetcv") or UNKNOWN,
        )
    found.update(_hosts_of_older(client, older, timeout))
    return found


def _hosts_of_older(client, eids: list[int], timeout: float) -> dict[int, tuple]:
    """(host, UNKNOWN) of engines whose fleetcv has no `engine_version`.

    Asked with a function every Python has, so the fix can name the host;
    an engine gone meanwhile is left out.
    """
    import os

    live = [eid for eid in eids if eid in client.ids]
    named = {eid: client[eid].apply_async(os.getenv, "FLEETCV_HOST") for eid in live}
    client.wait(list(named.values()), timeout=timeout)
    out = {}
    for eid, ar in named.items():
        try:
            host = get_result(ar) or f"engine {eid}"
        except Exception:  # noqa: BLE001 - the version is the error to report
            host = f"engine {eid}"
        out[eid] = (host, UNKNOWN)
    return out
