"""Multi-host test cluster for fleetcv, built from network namespaces.

This module is test infrastructure, not part of the fleetcv library.  It runs
on the test machine itself (as root, on Linux) and turns that one machine into
N SSH "hosts" so that fleetcv's multi-host code paths (Fabric connections,
rsync pushes, per-host paths, remote ipyparallel engines) are exercised for
real instead of mocked:

- a Linux bridge ``<prefix>br0`` in the root namespace carries
  ``<subnet>.1/24``; that is the address a controller listens on so that the
  hosts can connect back to it;
- every host ``<prefix><i>`` is a network namespace with a veth pair into the
  bridge, its own IP ``<subnet>.<10+i>`` and its own ``sshd``;
- every host has a private "local disk": its ``sshd`` runs in a private mount
  namespace in which a per-host directory under ``base_dir`` is bind-mounted
  on ``/srv/fleetcv``, so what one host writes there is invisible to the
  others and to the real filesystem.  Everything else (``/usr``, ``/tmp``,
  ``/root``, the Python installations) is shared with the real machine.

There is no PID namespace, so PIDs seen on a host are the PIDs of the root
namespace.  Use :func:`up` and :func:`down` from tests (see
``tests/test_testcluster.py``) or the command line, from the repository
root (``invoke testcluster.up`` / ``invoke testcluster.down`` do the same and
also write a hosts file)::

    python -m fleetcv.devtools.testcluster up -n 3   # prints hosts and a hosts.yml snippet
    python -m fleetcv.devtools.testcluster down

Dependencies: the standard library plus ``ip`` (iproute2), ``unshare``
(util-linux), ``/usr/sbin/sshd``, ``ssh``, ``ssh-keygen`` and ``rsync``.
"""

from __future__ import annotations

from fleetcv.devtools.testcluster.build import available, rekey, up
from fleetcv.devtools.testcluster.hostsfile import hosts_yml, up_and_write
from fleetcv.devtools.testcluster.settings import DEFAULT_BASE_DIR, STATE_FILE
from fleetcv.devtools.testcluster.teardown import down

__all__ = [
    "DEFAULT_BASE_DIR",
    "STATE_FILE",
    "available",
    "down",
    "hosts_yml",
    "rekey",
    "up",
    "up_and_write",
]
