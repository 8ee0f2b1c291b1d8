"""The `halving:` section of a search spec (``search: halving``).

Runs on the driver. scikit-learn's successive-halving parameters, with its
defaults: HalvingGridSearchCV's when the section has no `n_candidates`
(every candidate of the grid), HalvingRandomSearchCV's when it has one (a
sample of `n_candidates` from the parameter space, distributions allowed).
What needs the data (`min_resources: smallest`/`exhaust`, `max_resources:
auto`, `n_candidates: exhaust`) is resolved when the folds exist
(`runtime.kinds.halving.schedule`).
"""

from __future__ import annotations

import math
from typing import Any

from runtime.spec.common import check_keys, err, expect_bool

#: The keys of the `halving:` section.
HALVING_KEYS = {
    "factor",
    "resource",
    "min_resources",
    "max_resources",
    "aggressive_elimination",
    "n_candidates",
}
#: The resource that subsamples rows (any other names an estimator parameter).
N_SAMPLES = "n_samples"


def parse_halving(where: str, raw: Any, base) -> dict:
    """Validate the `halving:` section; return its settings with scikit-learn's defaults.

    Parameters
    ----------
    where : str
        The spec file, for messages.
    raw : dict or None
        The section as written (None: every default).
    base : sklearn estimator
        The spec's estimator, built: a resource other than n_samples must
        be one of its parameters.

    Returns
    -------
    dict
        factor, resource, min_resources, max_resources,
        aggressive_elimination, n_candidates (None for the grid flavour) and
        flavour ("grid" or "random").

    Raises
    ------
    ConfigError
        Naming the `halving.<key>`, the bad value and the fix.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise err(
            where,
            "halving",
            f"expected a mapping of settings, got {raw!r}",
            "write e.g. halving: {factor: 3, resource: n_samples}",
        )
    check_keys(where, "halving.", raw, HALVING_KEYS)
    flavour = "random" if "n_candidates" in raw else "grid"
    factor = raw.get("factor", 3)
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or factor <= 1
    ):
        raise err(
            where,
            "halving.factor",
            f"expected a number greater than 1, got {factor!r}",
            "write factor: 3 (keep the best third of each iteration)",
        )
    resource = raw.get("resource", N_SAMPLES)
    valid = set(base.get_params(deep=True))
    if not isinstance(resource, str) or (
        resource != N_SAMPLES and resource not in valid
    ):
        ints = sorted(
            k
            for k, v in base.get_params(deep=True).items()
            if isinstance(v, int) and not isinstance(v, bool)
        )
        raise err(
            where,
            "halving.resource",
            f"{resource!r} is neither n_samples nor a parameter of the estimator",
            "write resource: n_samples, or an integer parameter such as "
            + (", ".join(ints[:6]) or "n_estimators"),
        )
    default_min = "exhaust" if flavour == "grid" else "smallest"
    min_resources = _resources(
        where,
        "min_resources",
        raw.get("min_resources", default_min),
        ("smallest", "exhaust"),
    )
    max_resources = _resources(
        where, "max_resources", raw.get("max_resources", "auto"), ("auto",)
    )
    if max_resources == "auto" and resource != N_SAMPLES:
        raise err(
            where,
            "halving.max_resources",
            f"auto means all the rows, which resource {resource} is not",
            f"give the largest {resource} to fit with, e.g. max_resources: 200",
        )
    n_candidates = raw.get("n_candidates")
    if flavour == "random":
        n_candidates = _resources(where, "n_candidates", n_candidates, ("exhaust",))
        if n_candidates == "exhaust" and min_resources == "exhaust":
            raise err(
                where,
                "halving.n_candidates",
                "n_candidates and min_resources cannot both be exhaust (each is "
                "computed from the other)",
                "give n_candidates a number, or min_resources: smallest",
            )
    return {
        "flavour": flavour,
        "factor": factor,
        "resource": resource,
        "min_resources": min_resources,
        "max_resources": max_resources,
        "aggressive_elimination": expect_bool(
            where,
            "halving.aggressive_elimination",
            raw.get("aggressive_elimination", False),
            "write aggressive_elimination: true or false",
        ),
        "n_candidates": n_candidates,
    }


def _resources(where: str, key: str, value: Any, words: tuple[str, ...]) -> int | str:
    """A positive integer or one of `words`."""
    if value in words:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise err(
            where,
            f"halving.{key}",
            f"expected a positive integer or {' or '.join(words)}, got {value!r}",
            f"write {key}: {words[0]}, or a number such as {key}: 100",
        )
    return value


def check_resource_not_searched(where: str, settings: dict, params) -> None:
    """A parameter resource is set by each iteration: the grid may not search it too."""
    resource = settings["resource"]
    for grid in params:
        if resource != N_SAMPLES and resource in grid:
            raise err(
                where,
                f"params.{resource}",
                f"{resource} is the halving resource, which each iteration sets",
                f"remove {resource} from params (min_resources and max_resources bound it)",
            )
