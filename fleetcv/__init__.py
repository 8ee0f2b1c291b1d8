"""fleetcv: scikit-learn model selection on a fleet of hosts, from a laptop or a notebook.

The laptop's side (spec, kinds, dispatch, run directory, reports, EC2, the
estimator and the API); the hosts run the thin `runtime` package and import
nothing of this one. What a script or a notebook needs is one import away::

    from fleetcv import FleetSearchCV, fleetcv_learning_curve, fleetcv_validation_curve
    from fleetcv import start_cluster, cluster_status, probe_memory, stop_cluster
    from fleetcv import read_results  # a run directory's cv_results_, best_params_

Each is loaded on first use, so the command line does not pay
scikit-learn's or ipyparallel's import for a name it does not use.
"""

import importlib

#: What `from fleetcv import ...` offers, and the module that holds it.
PUBLIC = {
    "FleetSearchCV": "fleetcv.search_cv",
    "fleetcv_learning_curve": "fleetcv.search_cv",
    "fleetcv_validation_curve": "fleetcv.search_cv",
    "start_cluster": "fleetcv.api",
    "stop_cluster": "fleetcv.api",
    "cluster_status": "fleetcv.api",
    "probe_memory": "fleetcv.api",
    "format_probe": "fleetcv.api",
    "read_results": "fleetcv.api",
}


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'fleetcv' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *PUBLIC])
