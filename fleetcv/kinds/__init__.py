"""Job kinds, registered in one place: what differs between a search and a curve.

Runs on the driver. `KINDS` maps a run's meta.json `kind` to its `Kind`
(see `fleetcv.kinds.base`), and a spec's `search:` to the kind that runs it
(`search_kinds`, whose `SpecSection` reads the spec's own section); the
spec loader, the lifecycle, the task runner, `invoke report` and the reports
look a kind up here and never test kind names themselves. A new kind is its
own module in this package plus one entry below.
"""

from __future__ import annotations

from fleetcv.errors import ConfigError
from fleetcv.kinds.asha import ASHA
from fleetcv.kinds.base import Kind
from fleetcv.kinds.curves import LEARNING_CURVE, VALIDATION_CURVE
from fleetcv.kinds.halving import HALVING
from fleetcv.kinds.hyperband import HYPERBAND
from fleetcv.kinds.optuna_search import OPTUNA
from fleetcv.kinds.search import GRID, RANDOM, SEARCH

#: Every kind: by its meta.json name, and a search kind also by the spec's
#: `search:` value that runs it (grid and random share the search kind).
KINDS: dict[str, Kind] = {
    k.search or k.name: k
    for k in (
        SEARCH,
        GRID,
        RANDOM,
        HALVING,
        ASHA,
        OPTUNA,
        HYPERBAND,
        LEARNING_CURVE,
        VALIDATION_CURVE,
    )
}
#: The kinds `invoke search` runs and resumes (meta.json names).
SEARCH_KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(k.name for k in KINDS.values() if k.command == "search")
)


def search_kinds() -> dict[str, Kind]:
    """The kinds a spec's `search:` names, by that name, in the registry's order."""
    return {key: k for key, k in KINDS.items() if k.search == key}


def kind_of(job: dict) -> Kind:
    """The kind of a job (meta.json); runs from before kinds existed are searches.

    Raises
    ------
    ConfigError
        For a kind this fleetcv does not know.
    """
    name = job.get("kind") or SEARCH.name
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"meta.json: kind: {name!r} is not a kind of run this fleetcv knows "
            f"({', '.join(KINDS)}). Fix: open it with the fleetcv version that made it"
        ) from None


__all__ = ["KINDS", "SEARCH_KINDS", "Kind", "kind_of", "search_kinds"]
