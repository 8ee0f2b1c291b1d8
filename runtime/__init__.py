"""fleetcv's runtime: what runs on the engines, plus the driver that feeds them.

Importable without Fabric or Invoke; holds no SSH. What a script or a
notebook needs is one import away::

    from runtime import FleetSearchCV, fleetcv_learning_curve, fleetcv_validation_curve
    from runtime import start_cluster, cluster_status, probe_memory, stop_cluster
    from runtime import read_results  # a run directory's cv_results_, best_params_

Each is loaded on first use, so the command line does not pay
scikit-learn's or ipyparallel's import for a name it does not use.
"""

import importlib

#: What `from runtime import ...` offers, and the module that holds it.
PUBLIC = {
    "FleetSearchCV": "runtime.search_cv",
    "fleetcv_learning_curve": "runtime.search_cv",
    "fleetcv_validation_curve": "runtime.search_cv",
    "start_cluster": "runtime.api",
    "stop_cluster": "runtime.api",
    "cluster_status": "runtime.api",
    "probe_memory": "runtime.api",
    "format_probe": "runtime.api",
    "read_results": "runtime.api",
}


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *PUBLIC])
