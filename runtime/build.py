"""Estimators and scorers from plain descriptions: the wire format of a search's values.

Runs on the engines and on the driver. A search's candidates, journal and
results hold plain JSON; a value that is an estimator (a pipeline step chosen
from a list, a `base_estimator`) is written as its description
``{"class": "sklearn.svm.SVC", "params": {...}}`` and only becomes an object
where it is used: on the engine, just before `set_params` (`materialize`).
The driver's spec loader (fleetcv.spec) builds with the same functions, so a
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

Typed values: what JSON cannot say, `describe` writes as a mapping with the
key ``$type``, so `build` gives back the same type and value (what
GridSearchCV's `cv_results_` and `best_params_` hold):

- ``{"$type": "tuple", "items": [...]}``;
- ``{"$type": "dict", "items": [[key, value], ...]}``: a mapping whose keys
  are not all strings (``class_weight: {0: 1, 1: 5}``), or that would read
  as a description or a typed value;
- ``{"$type": "list", "items": [...]}``: a list that would read as named
  estimators (the YAML convention above);
- ``{"$type": "numpy", "dtype": "float32", "value": 0.5}``: a numpy scalar;
- ``{"$type": "ndarray", "dtype": "<f8", "shape": [2], "data": [...]}``: a
  numpy array of booleans, numbers or strings;
- ``{"$type": "import", "path": "numpy.log1p"}``: a function or a class that
  its import path finds again;
- ``{"$type": "pickle", "data": BASE64, "repr": "..."}``: anything else
  (a lambda, a notebook's class, a RandomState), by cloudpickle. Reading it
  runs code, as loading any pickle does: a run directory is trusted as the
  folds are (owner-only). Reports print its `repr` and never unpickle it.
"""

from __future__ import annotations

import base64
import importlib
from typing import Any

#: The keys of an estimator description besides `class` / `pipeline`.
ESTIMATOR_KEYS = frozenset({"class", "params"})
PIPELINE_KEYS = frozenset({"pipeline"})
STEP_KEYS = frozenset({"name", "class", "params", "pipeline"})
#: The keys of a metric-function scorer description.
METRIC_KEYS = frozenset({"metric", "greater_is_better", "response_method", "params"})
#: The key that marks a typed value (see the module docstring).
TYPE_KEY = "$type"
#: The Python types JSON writes and reads back as they are.
JSON_SCALARS = (bool, int, float, str)
#: numpy dtype kinds whose arrays JSON carries exactly: bool, ints, floats, str.
_ARRAY_KINDS = "biufU"
#: Characters of a pickled value's `repr` kept for reports.
REPR_CHARS = 200


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
    if isinstance(value, dict) and TYPE_KEY in value:
        return _build_typed(value)
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
    """The plain (JSON) description of a value, from which `build` makes it again.

    An estimator (anything with `get_params`, as scikit-learn's `clone`
    takes it) becomes ``{"class", "params"}``; what JSON has no type for
    becomes a typed value (see the module docstring), so that
    ``build(describe(v))`` has the type and value of ``clone(v, safe=False)``:
    what GridSearchCV sets on its estimator and gives back.

    Raises
    ------
    TypeError
        For a value that neither a description nor pickle can carry.
    """
    cls = type(obj)
    if obj is None or cls in JSON_SCALARS:
        return obj
    if cls is list:
        items = [describe(v) for v in obj]
        # Lists of [name, estimator] read back as Pipeline steps (tuples).
        return _typed("list", items=items) if _is_named_estimator_list(items) else items
    if cls is tuple:
        return _typed("tuple", items=[describe(v) for v in obj])
    if cls is dict:
        return _describe_dict(obj)
    if cls.__module__ == "numpy":
        typed = _describe_numpy(obj)
        if typed is not None:
            return typed
    if hasattr(obj, "get_params") and not isinstance(obj, type):
        path = _path_of(cls)
        if path is not None:
            return {
                "class": path,
                "params": {
                    k: describe(v) for k, v in obj.get_params(deep=False).items()
                },
            }
        # A notebook's estimator class: pickled by value, unfitted as
        # GridSearchCV's clone(value) would set it.
        from sklearn.base import clone

        return _pickled(clone(obj, safe=False))
    if callable(obj):
        path = _path_of(obj)
        if path is not None:
            return _typed("import", path=path)
    return _pickled(obj)


def _typed(name: str, **fields) -> dict:
    return {TYPE_KEY: name, **fields}


def _describe_dict(obj: dict) -> dict:
    """A mapping as it is, or as key-value pairs where JSON would change or misread it."""
    if all(type(k) is str for k in obj) and TYPE_KEY not in obj:
        plain = {k: describe(v) for k, v in obj.items()}
        if not is_estimator_description(plain):
            return plain
    return _typed("dict", items=[[describe(k), describe(v)] for k, v in obj.items()])


def _describe_numpy(obj: Any) -> dict | None:
    """A numpy scalar or array as a typed value; None when JSON cannot carry it exactly."""
    import numpy as np

    if isinstance(obj, np.generic):
        value = obj.item()
        name = type(obj).__name__
        if (
            type(value) in JSON_SCALARS
            and getattr(np, name, None) is type(obj)
            and _same_bits(getattr(np, name)(value), obj)
        ):
            return _typed("numpy", dtype=name, value=value)
        return None
    if type(obj) is np.ndarray and obj.dtype.kind in _ARRAY_KINDS:
        data = obj.tolist()
        if _same_bits(np.array(data, dtype=obj.dtype).reshape(obj.shape), obj):
            return _typed(
                "ndarray", dtype=obj.dtype.str, shape=list(obj.shape), data=data
            )
    return None


def _same_bits(a, b) -> bool:
    """Whether two numpy values hold the same bytes (NaN equals NaN; -0.0 differs from 0.0)."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _path_of(obj: Any) -> str | None:
    """The import path that finds `obj` again in another process, if there is one."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str) or module == "__main__":
        return None  # a notebook's or a script's own: no other process imports it
    path = f"{module}.{name}"
    try:
        found = import_path(path)
    except Exception:  # noqa: BLE001 - any failure means: not found by its path
        return None
    return path if found is obj else None


def _pickled(obj: Any) -> dict:
    """Any other value, by cloudpickle (which carries a notebook's functions and classes)."""
    import cloudpickle

    try:
        data = cloudpickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - whatever pickling raised, named
        raise TypeError(
            f"{type(obj).__name__} value {obj!r:.80} cannot be pickled ({exc})"
        ) from exc
    text = repr(obj)
    return _typed(
        "pickle",
        data=base64.b64encode(data).decode("ascii"),
        repr=text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 3] + "...",
    )


def comparable(value: Any) -> Any:
    """A description with each pickled value's bytes left out: what two runs' candidates compare by.

    Pickles of the same function or notebook class differ from one process
    to the next (cloudpickle records where the code was defined); their
    place and type still have to agree.
    """
    if isinstance(value, dict):
        if value.get(TYPE_KEY) == "pickle":
            return {TYPE_KEY: "pickle"}
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def _build_typed(value: dict) -> Any:
    """The value a typed description (``$type``) stands for."""
    kind = value[TYPE_KEY]
    if kind == "tuple":
        return tuple(build(v) for v in value["items"])
    if kind == "list":
        return [build(v) for v in value["items"]]
    if kind == "dict":
        return {build(k): build(v) for k, v in value["items"]}
    if kind == "numpy":
        import numpy as np

        return getattr(np, value["dtype"])(value["value"])
    if kind == "ndarray":
        import numpy as np

        return np.array(value["data"], dtype=value["dtype"]).reshape(value["shape"])
    if kind == "import":
        return import_path(value["path"])
    if kind == "pickle":
        import pickle

        return pickle.loads(base64.b64decode(value["data"]))
    raise ValueError(
        f"unknown typed value {kind!r} (written by a newer fleetcv?): upgrade fleetcv"
    )


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
