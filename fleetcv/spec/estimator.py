"""Estimators in a search spec: a class, a Pipeline, and any nesting of them.

Runs on the driver (the laptop). The spec names estimators by import path
(``sklearn.svm.SVC``), to any depth: a Pipeline's steps, a ColumnTransformer's
transformers, a FeatureUnion's parts, a `base_estimator`, and estimators
given as a parameter's values in the search space. `parse_estimator` (and
`check_description` for a single value) checks that each one imports, is an
estimator, takes the given params and builds, and the spec keeps the plain
description; `runtime.build` turns a description into objects, on
the driver and on the engines alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetcv.spec.common import check_keys, err, import_checked
from runtime.build import (
    ESTIMATOR_KEYS,
    STEP_KEYS,
    build,
)

_ESTIMATOR_FIX = "write estimator: {class: sklearn.svm.SVC, params: {}} or estimator: {pipeline: [...]}"


@dataclass(frozen=True)
class EstimatorSpec:
    """The estimator's plain description (see `runtime.build`)."""

    description: dict

    @property
    def pipeline(self) -> bool:
        """Whether the top level is a Pipeline."""
        return "pipeline" in self.description

    def build(self):
        """Instantiate a fresh (unfitted) estimator."""
        return build(self.description)


def parse_estimator(where: str, raw: Any) -> EstimatorSpec:
    """Validate the spec's ``estimator`` section.

    Parameters
    ----------
    where : str
        The spec file, for messages.
    raw : str, dict or None
        ``sklearn.svm.SVC``, ``{class: ..., params: {...}}`` or
        ``{pipeline: [{name: ..., class: ..., params: {...}}, ...]}``; params
        may hold such estimators themselves.

    Returns
    -------
    EstimatorSpec
        One that has been built once, so building it again works.

    Raises
    ------
    ConfigError
        Naming the first bad key, or the constructor's own error.
    """
    if isinstance(raw, str):
        raw = {"class": raw}
    if not isinstance(raw, dict):
        raise err(
            where, "estimator", f"expected a mapping, got {raw!r}", _ESTIMATOR_FIX
        )
    check_keys(where, "estimator.", raw, {"class", "params", "pipeline"})
    if "pipeline" in raw and "class" in raw:
        raise err(
            where,
            "estimator.pipeline",
            "expected a non-empty list of steps and no class",
            "write pipeline: [{name: scale, class: sklearn.preprocessing.StandardScaler}, ...]",
        )
    return EstimatorSpec(check_description(where, "estimator", raw))


def check_description(where: str, key: str, raw: Any) -> dict:
    """Validate one estimator description (to any depth) and build it once.

    Parameters
    ----------
    where, key : str
        The file and the key of `raw`, for messages.
    raw : dict
        ``{class, params}`` or ``{pipeline: [...]}``.

    Returns
    -------
    dict
        The description as plain data (``{"class": ..., "params": {...}}``
        or ``{"pipeline": [...]}``).

    Raises
    ------
    ConfigError
        Naming the first bad key, or the constructor's own error.
    """
    desc = _description(where, key, raw)
    try:
        build(desc)
    except Exception as exc:  # noqa: BLE001 - any constructor error is the user's to fix
        raise err(
            where,
            key,
            f"cannot build the estimator ({exc})",
            "check the class and its params",
        ) from exc
    return desc


def _description(where: str, key: str, raw: Any) -> dict:
    if "pipeline" in raw:
        return {"pipeline": _pipeline_steps(where, f"{key}.pipeline", raw["pipeline"])}
    check_keys(where, key + ".", raw, set(ESTIMATOR_KEYS))
    return _class_step(where, key, raw)


def _pipeline_steps(where: str, key: str, steps_raw: Any) -> list[dict]:
    if not isinstance(steps_raw, list) or not steps_raw:
        raise err(
            where,
            key,
            "expected a non-empty list of steps and no class",
            "write pipeline: [{name: scale, class: sklearn.preprocessing.StandardScaler}, ...]",
        )
    steps, names = [], set()
    for i, s in enumerate(steps_raw):
        skey = f"{key}[{i}]"
        if not isinstance(s, dict):
            raise err(
                where,
                skey,
                f"expected a mapping with name and class, got {s!r}",
                "write {name: svc, class: sklearn.svm.SVC}",
            )
        check_keys(where, skey + ".", s, set(STEP_KEYS))
        name = s.get("name")
        if not isinstance(name, str) or not name or "__" in name or name in names:
            raise err(
                where,
                skey + ".name",
                f"expected a unique step name without '__', got {name!r}",
                "name each step, e.g. name: svc",
            )
        names.add(name)
        body = {k: v for k, v in s.items() if k != "name"}
        steps.append({"name": name, **_description(where, skey, body)})
    return steps


def _class_step(where: str, key: str, raw: dict) -> dict:
    cls = import_checked(
        where,
        f"{key}.class",
        raw.get("class"),
        "give the import path of an estimator class, e.g. sklearn.svm.SVC",
    )
    if not hasattr(cls, "get_params") or not hasattr(cls, "fit"):
        raise err(
            where,
            f"{key}.class",
            f"{raw['class']!r} is not a scikit-learn estimator (no fit/get_params)",
            "use an estimator class",
        )
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise err(
            where,
            f"{key}.params",
            f"expected a mapping, got {params!r}",
            "write params: {kernel: rbf}",
        )
    valid = set(cls().get_params(deep=False)) if _no_required_args(cls) else None
    for p in params:
        if valid is not None and p not in valid:
            raise err(
                where,
                f"{key}.params.{p}",
                f"{raw['class']} has no parameter {p!r}",
                "use one of " + ", ".join(sorted(valid)),
            )
    return {
        "class": raw["class"],
        "params": {
            p: _nested(where, f"{key}.params.{p}", v) for p, v in params.items()
        },
    }


def _nested(where: str, key: str, value: Any) -> Any:
    """A parameter's value, with the estimators it holds checked (to any depth)."""
    if isinstance(value, dict) and ("class" in value or "pipeline" in value):
        return _description(where, key, value)
    if isinstance(value, list):
        return [_nested(where, f"{key}[{i}]", v) for i, v in enumerate(value)]
    return value


def _no_required_args(cls) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True
