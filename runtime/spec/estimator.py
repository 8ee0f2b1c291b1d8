"""The estimator section of a search spec: a scikit-learn class, or a Pipeline.

Runs on the driver (the laptop). The spec names estimators by import path
(``sklearn.svm.SVC``); `parse_estimator` checks that each imports, is an
estimator, takes the given params and builds, and returns an `EstimatorSpec`
that builds a fresh, unfitted copy whenever asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.spec.common import check_keys, err, import_checked, import_object

_ESTIMATOR_FIX = "write estimator: {class: sklearn.svm.SVC, params: {}} or estimator: {pipeline: [...]}"


@dataclass(frozen=True)
class EstimatorSpec:
    """The estimator: one class, or a Pipeline of named steps."""

    steps: tuple[tuple[str, str, dict], ...]
    pipeline: bool = False

    def build(self):
        """Instantiate a fresh (unfitted) estimator."""
        objs = [
            (name, import_object(path)(**params)) for name, path, params in self.steps
        ]
        if not self.pipeline:
            return objs[0][1]
        # Deferred: importing runtime.spec (fabfile.py does) must not import sklearn.
        from sklearn.pipeline import Pipeline

        return Pipeline(objs)


def parse_estimator(where: str, raw: Any) -> EstimatorSpec:
    """Validate the spec's ``estimator`` section.

    Parameters
    ----------
    where : str
        The spec file, for messages.
    raw : str, dict or None
        ``sklearn.svm.SVC``, ``{class: ..., params: {...}}`` or
        ``{pipeline: [{name: ..., class: ..., params: {...}}, ...]}``.

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
    if "pipeline" in raw:
        spec = EstimatorSpec(steps=_pipeline_steps(where, raw), pipeline=True)
    else:
        spec = EstimatorSpec(
            steps=(("estimator", *_class_step(where, "estimator", raw)),)
        )
    try:
        spec.build()
    except Exception as exc:  # noqa: BLE001 - any constructor error is the user's to fix
        raise err(
            where,
            "estimator",
            f"cannot build the estimator ({exc})",
            "check the class and its params",
        ) from exc
    return spec


def _pipeline_steps(where: str, raw: dict) -> tuple[tuple[str, str, dict], ...]:
    steps_raw = raw["pipeline"]
    if "class" in raw or not isinstance(steps_raw, list) or not steps_raw:
        raise err(
            where,
            "estimator.pipeline",
            "expected a non-empty list of steps and no class",
            "write pipeline: [{name: scale, class: sklearn.preprocessing.StandardScaler}, ...]",
        )
    steps, names = [], set()
    for i, s in enumerate(steps_raw):
        key = f"estimator.pipeline[{i}]"
        if not isinstance(s, dict):
            raise err(
                where,
                key,
                f"expected a mapping with name and class, got {s!r}",
                "write {name: svc, class: sklearn.svm.SVC}",
            )
        check_keys(where, key + ".", s, {"name", "class", "params"})
        name = s.get("name")
        if not isinstance(name, str) or not name or "__" in name or name in names:
            raise err(
                where,
                key + ".name",
                f"expected a unique step name without '__', got {name!r}",
                "name each step, e.g. name: svc",
            )
        names.add(name)
        steps.append((name, *_class_step(where, key, s)))
    return tuple(steps)


def _class_step(where: str, key: str, raw: dict) -> tuple[str, dict]:
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
    return raw["class"], dict(params)


def _no_required_args(cls) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True
