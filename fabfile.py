"""Fabric's entry point: one-host tasks of the SSH backend, for work by hand.

    fab -H root@10.0.0.11 status --workdir /srv/fleetcv

Everything that touches a host lives in the SSH backend
(`fleetcv.backends.ssh`); Fabric looks for its tasks in a fabfile.py at the
root, so they are named here.
"""

from fleetcv.backends.ssh import memory, status, stop

__all__ = ["memory", "status", "stop"]
