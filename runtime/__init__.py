"""fleetcv's runtime: what runs on the engines, plus the driver that feeds them.

Importable without Fabric or Invoke; holds no SSH. The scikit-learn-style
search estimator and curves are `from runtime import FleetSearchCV,
fleetcv_learning_curve, fleetcv_validation_curve` (loaded on first use, so
the command line does not pay scikit-learn's import).
"""

#: What `from runtime import ...` offers a script or a notebook.
PUBLIC = ("FleetSearchCV", "fleetcv_learning_curve", "fleetcv_validation_curve")


def __getattr__(name: str):
    if name in PUBLIC:
        import runtime.search_cv as search_cv

        return getattr(search_cv, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
