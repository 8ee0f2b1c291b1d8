"""The hosts.yml of a namespace test cluster, and `up_and_write` behind `invoke testcluster.up`.

Runs on the test machine, as root (see `fleetcv.devtools.testcluster`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fleetcv.devtools.testcluster.build import available, up
from fleetcv.devtools.testcluster.settings import (
    _YAML_PLAIN_RE,
    BRIDGE_HOST_PART,
    CONTROLLER_PORTS,
    ENGINES_PER_HOST,
    REMOTE_PYTHON,
)
from fleetcv.errors import HostError


def _yaml_scalar(value: object) -> str:
    text = str(value)
    # JSON strings are valid YAML; quote only what a plain scalar can't hold.
    return text if _YAML_PLAIN_RE.match(text) else json.dumps(text)


def hosts_yml(
    state: dict, controller_ip: str | None = None, python: str = REMOTE_PYTHON
) -> str:
    """Render a fleetcv ``hosts.yml`` for the cluster in ``state``.

    Parameters
    ----------
    state : dict
        State returned by :func:`up` (or loaded from its state file).
    controller_ip : str, optional
        Address the controller listens on; defaults to the bridge address,
        the only root-namespace address the hosts can reach.
    python : str
        Python command on the hosts.  Hosts share the real filesystem, but
        ``python3`` is looked up on the PATH of root's SSH shell (whatever
        ``~root/.bashrc`` sets), not in this process's virtualenv; pass an
        absolute path (e.g. the venv's ``sys.executable``) when the engines
        need the venv's packages.

    Returns
    -------
    str
        YAML text with a ``controller`` section and one ``hosts`` entry per
        host (``name``, ``address``, ``engines``, ``workdir``, ``python``,
        ``ssh_key``).
    """
    ip = (
        controller_ip
        or state.get("bridge_ip")
        or f"{state['subnet']}.{BRIDGE_HOST_PART}"
    )
    lines = [
        f"ssh_config: {_yaml_scalar(state['ssh_config'])}",
        "controller:",
        f"  ip: {_yaml_scalar(ip)}",
        f"  ports: [{CONTROLLER_PORTS[0]}, {CONTROLLER_PORTS[1]}]",
        "hosts:",
    ]
    for host in state["hosts"]:
        lines += [
            f"  - name: {_yaml_scalar(host['name'])}",
            f"    address: {_yaml_scalar(host['address'])}",
            f"    engines: {ENGINES_PER_HOST}",
            f"    workdir: {_yaml_scalar(host['workdir'])}",
            f"    python: {_yaml_scalar(python)}",
            f"    ssh_key: {_yaml_scalar(host['key'])}",
        ]
    return "\n".join(lines) + "\n"


def up_and_write(n_hosts: int, base_dir, write: str | os.PathLike) -> list[str]:
    """Create the test cluster and write its hosts file (`invoke testcluster.up`).

    Returns
    -------
    list of str
        A line per host, then what to run next.

    Raises
    ------
    HostError
        When this machine cannot hold the test cluster (not root, no sshd...).
    """
    ok, why = available()
    if not ok:
        raise HostError(f"cannot create the test cluster here: {why}")
    state = up(n_hosts, base_dir)
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    Path(write).write_text(hosts_yml(state, python=python))
    lines = [f"{h['name']}: {h['address']} (disk {h['disk']})" for h in state["hosts"]]
    lines.append(
        f"wrote {write}. Next: invoke hosts.install --hosts-file {write} && "
        f"invoke search --hosts-file {write}"
    )
    return lines
