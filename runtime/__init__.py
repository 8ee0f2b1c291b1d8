"""What runs on the hosts: the engine launcher, the worker, the record schema, the probe.

The only part of fleetcv that an engine host needs. It imports nothing of
the laptop's package `fleetcv` (tests/test_imports.py checks it), so the driver's
modules (dispatch, reports, EC2) never load on an engine. Hosts get it as the
installed `fleetcv` wheel (fabfile.py, `invoke hosts.install`).
"""

from __future__ import annotations

#: fleetcv's version, the one source of it: pyproject.toml reads it for the
#: wheel, and the driver refuses engines that report another one
#: (fleetcv/dispatch/versions.py).
__version__ = "0.5.0"


def engine_version() -> dict:
    """Say which fleetcv this engine runs, and where (runs on an engine).

    Sent by `fleetcv.dispatch.versions.check_engine_versions`. ipyparallel
    ships this function's code but runs it with the globals of the engine's
    own `runtime`, so `__version__` is the installed one, not the
    driver's.

    Returns
    -------
    dict
        ``host`` (FLEETCV_HOST, else the hostname), ``pid``, ``fleetcv``
        (this engine's version, None for a fleetcv older than versioning)
        and ``python`` (the interpreter the engine runs).
    """
    import os
    import socket
    import sys

    return {
        "host": os.environ.get("FLEETCV_HOST") or socket.gethostname(),
        "pid": os.getpid(),
        "fleetcv": globals().get("__version__"),
        "python": sys.executable,
    }
