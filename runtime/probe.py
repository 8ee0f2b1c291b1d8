"""Engine-side memory probe: this engine's RSS/USS/PSS and its host's memory.

Runs on every engine (sent by `fleetcv.dispatch.probes.probe_cluster`).
USS is the memory only that process holds; PSS splits shared pages
(memmapped folds) between the processes that map them.
"""

from __future__ import annotations

import os
import socket

import psutil


def engine_probe() -> dict:
    """Memory of this engine process and of its host (runs on an engine)."""
    proc = psutil.Process()
    full = proc.memory_full_info()
    vm = psutil.virtual_memory()
    return {
        "host": os.environ.get("FLEETCV_HOST") or socket.gethostname(),
        "pid": os.getpid(),
        "rss": full.rss,
        "uss": full.uss,
        "pss": getattr(full, "pss", full.uss),
        "host_available": vm.available,
        "host_total": vm.total,
    }
