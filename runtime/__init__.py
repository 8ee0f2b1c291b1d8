"""fleetcv's runtime: what runs on the engines, plus the driver that feeds them.

Importable without Fabric or Invoke; holds no SSH. The scikit-learn-style
search estimator is `from runtime import FleetSearchCV` (loaded on first use,
so the command line does not pay scikit-learn's import).
"""


def __getattr__(name: str):
    if name == "FleetSearchCV":
        from runtime.search_cv import FleetSearchCV

        return FleetSearchCV
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
