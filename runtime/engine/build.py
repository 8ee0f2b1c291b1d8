"""Estimators and scorers from plain descriptions: the wire format of a search's values.

Runs on the engines and on the driver. A search's candidates, journal and
results hold plain JSON; a value that is an estimator (a pipeline step chosen
from a list, a `base_estimator`) is written as its description
``{"class": "sklearn.svm.SVC", "params": {...}}`` and only becomes an object
where it is used: on the engine, just before `set_params` (`materialize`).
The driver's spec loader (runtime.spec) builds with the same functions, so a
description that builds there builds the same object on every host.

Descriptions:

- an estimator: ``{"class": IMPORT.PATH, "params": {...}}`` (params
  optional), or a pipeline ``{"pipeline": [{"name": N, "class": ...,
  "params": ...} | {"name": N, "pipeline": [...]}, ...]}``; params may hold
  descriptions themselves, to any depth;
- a list whose items start with a name and an estimator (``[name, est, ...]``:
  Pipeline steps, FeatureUnion's transformer_list, ColumnTransformer's
  transformers) becomes a list of tuples, as scikit-learn writes them;
- a scorer: a scikit-learn scorer name (``accuracy``), an import path of a
  scorer object (``mypkg.metrics.cost_scorer``), or a metric function with
  `make_scorer` options ``{"metric": IMPORT.PATH, "greater_is_better":
  ..., "response_method": ..., "params": {...}}``; several as a list or a
  mapping of name -> scorer (multi-metric, as scikit-learn's `scoring`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The keys of an estimator description besides `class` / `pipeline`.
ESTIMATOR_KEYS = frozenset({"class", "params"})
PIPELINE_KEYS = frozenset({"pipeline"})
STEP_KEYS = frozenset({"name", "class", "params", "pipeline"})
#: The keys of a metric-function scorer description.
METRIC_KEYS = frozenset({"metric", "greater_is_better", "response_method", "params"})


def import_path(path: str) -> Any:
    """Import ``package.module.attr`` and return the attribute."""
    mod, _, attr = path.rpartition(".")
    if not mod:
        raise ImportError(f"{path!r} is not an import path like package.module.Name")
    return getattr(importlib.import_module(mod), attr)


def is_estimator_description(value: Any) -> bool:
    """Whether `value` is the plain description of an estimator or a pipeline."""
    if not isinstance(value, dict):
        return False
    keys = set(value)
    if "class" in value:
        return isinstance(value["class"], str) and keys <= ESTIMATOR_KEYS
    return "pipeline" in value and keys <= PIPELINE_KEYS


def build(value: Any) -> Any:
    """The object a description stands for; any other value as it is (recursively).

    Parameters
    ----------
    value : any
        A description (see the module docstring), or a plain value, list or
        mapping that may hold descriptions.

    Returns
    -------
    any
        A new, unfitted estimator for each description met.

    Raises
    ------
    ImportError, AttributeError, TypeError, ValueError
        From the import or the constructor, as they come.
    """
    if is_estimator_description(value):
        if "class" in value:
            cls = import_path(value["class"])
            params = {k: build(v) for k, v in (value.get("params") or {}).items()}
            return cls(**as_tuples(params, _defaults(cls)))
        # Deferred: the engine package loads scikit-learn only where it fits.
        from sklearn.pipeline import Pipeline

        return Pipeline([(s["name"], build_step(s)) for s in value["pipeline"]])
    if isinstance(value, list):
        items = [build(v) for v in value]
        if _is_named_estimator_list(value):
            return [tuple(i) for i in items]
        return items
    if isinstance(value, dict):
        return {k: build(v) for k, v in value.items()}
    return value


def build_step(step: dict) -> Any:
    """One pipeline step's estimator: ``{name, class, params}`` or ``{name, pipeline}``."""
    return build({k: v for k, v in step.items() if k != "name"})


def _is_named_estimator_list(value: list) -> bool:
    """A list of [name, estimator, ...] items, as Pipeline/FeatureUnion/ColumnTransformer take."""
    return bool(value) and all(
        isinstance(item, list)
        and len(item) >= 2
        and isinstance(item[0], str)
        and (is_estimator_description(item[1]) or item[1] in ("drop", "passthrough"))
        for item in value
    )


def materialize(params: dict, estimator=None) -> dict:
    """`params` with every estimator description built (what `set_params` gets).

    With `estimator`, a list stands for a tuple where the estimator's
    current value is a tuple (`as_tuples`).
    """
    built = {k: build(v) for k, v in params.items()}
    if estimator is None:
        return built
    return as_tuples(built, estimator.get_params(deep=True))


def as_tuples(params: dict, current: dict) -> dict:
    """Lists as tuples where the parameter's current or default value is a tuple.

    YAML and JSON have no tuples: ``ngram_range: [1, 2]`` means scikit-learn's
    ``(1, 2)``, which its parameter validation requires.
    """
    return {
        k: tuple(v) if isinstance(v, list) and isinstance(current.get(k), tuple) else v
        for k, v in params.items()
    }


def _defaults(cls) -> dict:
    """The default value of each constructor parameter of `cls`."""
    import inspect

    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default for p in params if p.default is not inspect.Parameter.empty
    }


def describe(obj: Any) -> Any:
    """The plain description of a value: an estimator as ``{"class", "params"}`` (inverse of `build`).

    Numpy scalars become Python ones and tuples lists (JSON has no tuple;
    `as_tuples` brings them back); other values come back as they are.
    """
    if hasattr(obj, "get_params") and hasattr(obj, "fit") and not isinstance(obj, type):
        cls = type(obj)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": {k: describe(v) for k, v in obj.get_params(deep=False).items()},
        }
    if isinstance(obj, list | tuple):
        return [describe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return obj.item()  # a numpy scalar
    return obj


# ------------------------------------------------------------------ scorers


def is_multimetric(scoring: Any) -> bool:
    """Whether `scoring` names several metrics (a list or a mapping), as scikit-learn's."""
    return isinstance(scoring, list | tuple) or (
        isinstance(scoring, dict) and not set(scoring) & {"metric"}
    )


def metric_names(scoring: Any) -> list[str]:
    """The names of the metrics in results: ``["score"]`` for a single one."""
    if not is_multimetric(scoring):
        return ["score"]
    return list(scoring)


def build_scorer(value: Any, estimator=None):
    """One scorer from its description (see the module docstring); None: `estimator.score`."""
    from sklearn.metrics import check_scoring, get_scorer, make_scorer

    if value is None:
        return check_scoring(estimator)
    if callable(value):
        return value  # a scorer object given from Python
    if isinstance(value, dict):
        opts = {k: v for k, v in value.items() if k not in ("metric", "params")}
        return make_scorer(
            import_path(value["metric"]), **opts, **(value.get("params") or {})
        )
    if "." in value:
        scorer = import_path(value)
        if not callable(scorer):
            raise TypeError(f"{value} is not callable, so it is not a scorer")
        return scorer
    return get_scorer(value)


def build_scorers(scoring: Any, estimator=None):
    """The scorer of a search: one callable, or a name -> scorer dict (multi-metric).

    Parameters
    ----------
    scoring : str, dict, list or None
        As a spec writes it (see the module docstring).
    estimator : estimator, optional
        Whose `score` is used when `scoring` is None.

    Returns
    -------
    callable or dict
        `scorer(est, X, y) -> float`, or ``{name: scorer}``.
    """
    if not is_multimetric(scoring):
        return build_scorer(scoring, estimator)
    if isinstance(scoring, dict):
        return {name: build_scorer(v, estimator) for name, v in scoring.items()}
    return {name: build_scorer(name, estimator) for name in scoring}
