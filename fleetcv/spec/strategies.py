"""The settings sections of the searches beyond grid and random: `halving:`, `optuna:`.

Runs on the driver. `halving:` (``search: halving``) holds scikit-learn's successive-halving parameters, with its defaults: HalvingGridSearchCV's when the section has no `n_candidates`
(every candidate of the grid), HalvingRandomSearchCV's when it has one (a
sample of `n_candidates` from the parameter space, distributions allowed).
What needs the data (`min_resources: smallest`/`exhaust`, `max_resources:
auto`, `n_candidates: exhaust`) is resolved when the folds exist
(`fleetcv.kinds.halving.schedule`).
"""

from __future__ import annotations

import math
from typing import Any

from fleetcv.spec.common import check_keys, err, expect_bool

#: The keys of the `halving:` section.
HALVING_KEYS = {
    "factor",
    "resource",
    "min_resources",
    "max_resources",
    "aggressive_elimination",
    "n_candidates",
}
#: The keys of the `asha:` section: halving's, with trials in flight
#: instead of aggressive elimination (ASHA has no iterations to add).
ASHA_KEYS = (HALVING_KEYS - {"aggressive_elimination"}) | {"parallel"}
#: The resource that subsamples rows (any other names an estimator parameter).
N_SAMPLES = "n_samples"


def parse_halving(where: str, raw: Any, base, section: str = "halving") -> dict:
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
    section : str
        The section's name in messages (`asha:` shares these settings).

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
            section,
            f"expected a mapping of settings, got {raw!r}",
            f"write e.g. {section}: {{factor: 3, resource: n_samples}}",
        )
    check_keys(
        where, f"{section}.", raw, HALVING_KEYS if section == "halving" else ASHA_KEYS
    )
    flavour = "random" if "n_candidates" in raw else "grid"
    resource = parse_resource(where, f"{section}.resource", raw, base)
    min_resources, max_resources = parse_min_max(where, section, raw, flavour, resource)
    return {
        "flavour": flavour,
        "factor": parse_factor(where, f"{section}.factor", raw.get("factor", 3)),
        "resource": resource,
        "min_resources": min_resources,
        "max_resources": max_resources,
        "aggressive_elimination": expect_bool(
            where,
            f"{section}.aggressive_elimination",
            raw.get("aggressive_elimination", False),
            "write aggressive_elimination: true or false",
        ),
        "n_candidates": _n_candidates(where, section, raw, flavour, min_resources),
        "parallel": _parallel(where, f"{section}.parallel", raw.get("parallel")),
    }


def parse_factor(where: str, key: str, factor: Any) -> float:
    """A number above 1: the share kept (1/factor) and the growth of resources."""
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or factor <= 1
    ):
        raise err(
            where,
            key,
            f"expected a number greater than 1, got {factor!r}",
            "write factor: 3 (keep the best third of each iteration)",
        )
    return factor


def parse_resource(where: str, key: str, raw: dict, base) -> str:
    """n_samples, or a parameter of the estimator that each iteration sets."""
    resource = raw.get("resource", N_SAMPLES)
    params = base.get_params(deep=True)
    if isinstance(resource, str) and (resource == N_SAMPLES or resource in params):
        return resource
    ints = sorted(
        k for k, v in params.items() if isinstance(v, int) and not isinstance(v, bool)
    )
    raise err(
        where,
        key,
        f"{resource!r} is neither n_samples nor a parameter of the estimator",
        "write resource: n_samples, or an integer parameter such as "
        + (", ".join(ints[:6]) or "n_estimators"),
    )


def parse_min_max(where: str, section: str, raw: dict, flavour: str, resource: str):
    """min_resources and max_resources, with scikit-learn's defaults per flavour."""
    halving = section == "halving"
    default_min = "exhaust" if flavour == "grid" and halving else "smallest"
    min_resources = _resources(
        where,
        f"{section}.min_resources",
        raw.get("min_resources", default_min),
        ("smallest", "exhaust") if halving else ("smallest",),
    )
    max_resources = _resources(
        where, f"{section}.max_resources", raw.get("max_resources", "auto"), ("auto",)
    )
    if max_resources == "auto" and resource != N_SAMPLES:
        raise err(
            where,
            f"{section}.max_resources",
            f"auto means all the rows, which resource {resource} is not",
            f"give the largest {resource} to fit with, e.g. max_resources: 200",
        )
    return min_resources, max_resources


def _n_candidates(where: str, section: str, raw: dict, flavour: str, min_resources):
    """The number of candidates to sample (random flavour), `exhaust`, or None (grid)."""
    if flavour != "random":
        return None
    n = _resources(where, f"{section}.n_candidates", raw["n_candidates"], ("exhaust",))
    if n == "exhaust" and min_resources == "exhaust":
        raise err(
            where,
            f"{section}.n_candidates",
            "n_candidates and min_resources cannot both be exhaust (each is "
            "computed from the other)",
            "give n_candidates a number, or min_resources: smallest",
        )
    return n


def _parallel(where: str, key: str, parallel: Any) -> int | None:
    """How many rows a planner keeps in flight: a positive integer, or None (one per engine)."""
    if parallel is not None and (
        isinstance(parallel, bool) or not isinstance(parallel, int) or parallel <= 0
    ):
        raise err(
            where,
            key,
            f"expected a positive integer or null, got {parallel!r}",
            "write parallel: 4 (in flight at once), or leave it out for one per engine",
        )
    return parallel


def _resources(where: str, key: str, value: Any, words: tuple[str, ...]) -> int | str:
    """A positive integer or one of `words`."""
    if value in words:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        name = key.split(".")[-1]
        raise err(
            where,
            key,
            f"expected a positive integer or {' or '.join(words)}, got {value!r}",
            f"write {name}: {words[0]}, or a number such as {name}: 100",
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


def check_one_metric(where: str, search: str, scoring: Any, refit: Any) -> None:
    """A search that keeps candidates by one metric (halving, ASHA, Optuna...) refits by it."""
    if isinstance(scoring, list | dict):
        raise err(
            where,
            "scoring",
            f"a {search} search keeps candidates by one metric, and this names several",
            "give one scorer name, e.g. scoring: accuracy",
        )
    if not isinstance(refit, bool):
        raise err(
            where,
            "refit",
            f"a {search} search refits its best by its one metric, not {refit!r}",
            "write refit: true or refit: false",
        )


def resource_check(search: str):
    """The `SpecSection.check` of a search over a resource (halving, ASHA, Hyperband)."""

    def check(where: str, settings: dict, params, scoring, refit) -> dict:
        check_resource_not_searched(where, settings, params)
        check_one_metric(where, search, scoring, refit)
        return settings

    return check


#: The keys of the `optuna:` section.
OPTUNA_KEYS = {"n_trials", "sampler", "sampler_params", "parallel", "storage"}


def parse_optuna(where: str, raw: Any, random_state: int | None) -> dict:
    """Validate the `optuna:` section of a ``search: optuna`` spec.

    `sampler` is a class name of optuna.samplers (default TPESampler),
    made with `sampler_params`; the spec's random_state seeds it unless
    sampler_params give a seed. `parallel` is how many trials are in flight
    (default: one per engine), `storage` an Optuna storage URL (default:
    the study lives in the driver, rebuilt from the journal on resume).

    Raises
    ------
    ConfigError
        Naming the `optuna.<key>`, the bad value and the fix.
    """
    if raw is None:
        raise err(
            where,
            "optuna",
            "missing: an Optuna search needs its number of trials",
            "add optuna: {n_trials: 30}",
        )
    if not isinstance(raw, dict):
        raise err(
            where,
            "optuna",
            f"expected a mapping with n_trials, got {raw!r}",
            "write e.g. optuna: {n_trials: 30}",
        )
    check_keys(where, "optuna.", raw, OPTUNA_KEYS)
    n_trials = raw.get("n_trials")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials <= 0:
        raise err(
            where,
            "optuna.n_trials",
            f"expected a positive integer, got {n_trials!r}",
            "write n_trials: 30 (the trials to run)",
        )
    sampler, params = _optuna_sampler(where, raw, random_state)
    parallel = _parallel(where, "optuna.parallel", raw.get("parallel"))
    storage = raw.get("storage")
    if storage is not None and (not isinstance(storage, str) or "://" not in storage):
        raise err(
            where,
            "optuna.storage",
            f"expected an Optuna storage URL, got {storage!r}",
            "write e.g. storage: sqlite:///runs/optuna.db, or leave it out",
        )
    return {
        "n_trials": n_trials,
        "sampler": sampler,
        "sampler_params": params,
        "parallel": parallel,
        "storage": storage,
    }


def _optuna_sampler(
    where: str, raw: dict, random_state: int | None
) -> tuple[str, dict]:
    """The `optuna.sampler` name and its arguments, checked by making one."""
    sampler = raw.get("sampler", "TPESampler")
    import optuna

    names = sorted(n for n in dir(optuna.samplers) if n.endswith("Sampler"))
    if sampler not in names or sampler == "BaseSampler":
        raise err(
            where,
            "optuna.sampler",
            f"{sampler!r} is not a sampler of optuna.samplers",
            "use one of " + ", ".join(n for n in names if n != "BaseSampler"),
        )
    params = raw.get("sampler_params") or {}
    if not isinstance(params, dict):
        raise err(
            where,
            "optuna.sampler_params",
            f"expected a mapping of {sampler}'s arguments, got {params!r}",
            "write e.g. sampler_params: {seed: 0, n_startup_trials: 10}",
        )
    if random_state is not None and "seed" not in params:
        params = {**params, "seed": random_state}
    try:
        getattr(optuna.samplers, sampler)(**params)
    except Exception as exc:  # noqa: BLE001 - the sampler's own complaint, named
        raise err(
            where,
            "optuna.sampler_params",
            f"optuna.samplers.{sampler}(**{params!r}) raised {type(exc).__name__}: {exc}",
            f"give arguments that {sampler} takes",
        ) from None
    return sampler, params


def optuna_space(where: str, params: tuple[dict, ...]) -> dict:
    """The parameter space as Optuna distributions, in plain data (see the optuna kind).

    A list is a categorical choice (of numbers, strings, booleans or null);
    loguniform(a, b) a log-scaled float, uniform(a, b) a float, randint(a,
    b) an integer in [a, b) as scipy's (Optuna's IntDistribution(a, b - 1)).
    """
    from fleetcv.spec.expr import Distribution

    if len(params) != 1:
        raise err(
            where,
            "params",
            f"an Optuna search samples one space, and this gives {len(params)}",
            "write params as one mapping, e.g. params: {C: loguniform(1e-2, 1e2)}",
        )
    space = {}
    for name, values in params[0].items():
        if isinstance(values, Distribution):
            a, b = values.args
            if values.name == "randint":
                space[name] = {"type": "int", "low": int(a), "high": int(b) - 1}
            else:
                space[name] = {
                    "type": "float",
                    "low": float(a),
                    "high": float(b),
                    "log": values.name == "loguniform",
                }
            continue
        bad = [
            v
            for v in values
            if not isinstance(v, bool | int | float | str | type(None))
        ]
        if bad:
            raise err(
                where,
                f"params.{name}",
                f"Optuna chooses among numbers, strings, booleans and null, not {bad[0]!r}",
                "give plain values (an estimator choice needs search: grid or random)",
            )
        space[name] = {"type": "categorical", "choices": list(values)}
    return space
