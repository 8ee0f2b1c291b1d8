"""`python -m fleetcv.devtools.testcluster up|down`: the test cluster's command line.

Runs on the test machine, as root (see `fleetcv.devtools.testcluster`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetcv.devtools.testcluster.build import up
from fleetcv.devtools.testcluster.hostsfile import hosts_yml
from fleetcv.devtools.testcluster.settings import (
    DEFAULT_BASE_DIR,
    DEFAULT_N_HOSTS,
    DEFAULT_PREFIX,
    DEFAULT_SUBNET,
    STATE_FILE,
)
from fleetcv.devtools.testcluster.teardown import down


def main(argv: list[str] | None = None) -> int:
    """Command line: ``up [-n N] [--base-dir D]`` or ``down [--base-dir D]``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fleetcv.devtools.testcluster",
        description="fleetcv multi-host test cluster (netns + sshd).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create the cluster and print its hosts")
    p_up.add_argument(
        "-n", "--hosts", type=int, default=DEFAULT_N_HOSTS, help="number of hosts"
    )
    p_up.add_argument(
        "--base-dir", default=None, help=f"state directory ({DEFAULT_BASE_DIR})"
    )
    p_up.add_argument("--prefix", default=DEFAULT_PREFIX, help="name prefix")
    p_up.add_argument(
        "--subnet", default=DEFAULT_SUBNET, help="first three octets of the /24"
    )
    p_down = sub.add_parser("down", help="tear the cluster down")
    p_down.add_argument(
        "--base-dir", default=None, help=f"state directory ({DEFAULT_BASE_DIR})"
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        state = up(args.hosts, args.base_dir, prefix=args.prefix, subnet=args.subnet)
        print(f"state: {Path(state['base_dir']) / STATE_FILE}")
        for host in state["hosts"]:
            print(
                f"{host['name']:<8} {host['address']:<18} "
                f"sshd pid {host['sshd_pid']:<8} "
                f"disk {host['disk']}"
            )
        print(
            f"\ntry: ssh -F {state['ssh_config']} {state['hosts'][0]['name']} "
            "hostname -I\n"
        )
        print("# hosts.yml")
        print(hosts_yml(state), end="")
    else:
        down(args.base_dir)
        print("test cluster is down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
