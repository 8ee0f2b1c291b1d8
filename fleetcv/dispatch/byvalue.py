"""Which of a user's modules travel to the engines by value, not by import path.

Runs on the driver. scikit-learn's GridSearchCV runs a notebook's classes
and a project's own modules because loky's workers get them by cloudpickle.
fleetcv's engines get every message through cloudpickle too
(`fleetcv.dispatch.cluster.connect`, and the engines at start): a class or a
function of `__main__` (a notebook, a script), and a lambda, go by value as
it is. A module the hosts do not have (the user's `myproj/features.py`,
imported from the notebook's folder) would go by reference and fail to
import there: `register_user_modules` finds, in an estimator, a scorer or
parameter values, the modules that are not part of an installed
distribution nor of the standard library, and has cloudpickle send them by
value. Installed packages (scikit-learn, lightgbm, fleetcv itself) still go
by reference: the hosts have them.
"""

from __future__ import annotations

import site
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any


def _installed_roots() -> tuple[Path, ...]:
    """Where installed code lives: the stdlib, site-packages, user and dist-packages."""
    roots = [
        p
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    ]
    roots += site.getsitepackages() + [site.getusersitepackages()]
    roots += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return tuple(dict.fromkeys(Path(p).resolve() for p in roots))


#: What is under these goes by reference: the hosts have it installed.
_INSTALLED = _installed_roots()
#: fleetcv's own package: on every host by its wheel.
_OWN = ("runtime", "fleetcv")


def register_user_modules(*objects: Any) -> list[str]:
    """Have cloudpickle send the user's uninstalled modules of `objects` by value.

    Parameters
    ----------
    *objects
        Estimators (walked through `get_params(deep=True)`), scorers,
        functions, classes, and lists/dicts of them.

    Returns
    -------
    list of str
        The top-level packages or modules registered, sorted.
    """
    import cloudpickle

    names = sorted({_top(m) for m in _modules(objects) if _is_users(m)})
    for name in names:
        cloudpickle.register_pickle_by_value(sys.modules[name])
    return names


def _top(module: str) -> str:
    """The top-level package of a module (what cloudpickle registers)."""
    top = module.partition(".")[0]
    return top if top in sys.modules else module


def _is_users(module: str) -> bool:
    """A module of the user's own code: imported, from a file, not installed, not fleetcv."""
    if module == "__main__" or module.partition(".")[0] in _OWN:
        return False  # __main__ goes by value anyway
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if not file:
        return False  # built-in or namespace-less: the hosts have it
    path = Path(file).resolve()
    return not any(path.is_relative_to(root) for root in _INSTALLED)


def _modules(objects, seen: set[int] | None = None) -> set[str]:
    """The modules that define the objects, their classes, and what they hold."""
    seen = set() if seen is None else seen
    out: set[str] = set()
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, str | bytes | int | float):
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
            continue
        if isinstance(obj, types.FunctionType | type):
            out.add(obj.__module__)
            continue
        if isinstance(obj, types.ModuleType):
            continue
        out.add(type(obj).__module__)
        if hasattr(obj, "get_params") and not isinstance(obj, type):
            stack.extend(obj.get_params(deep=True).values())
        # A scorer holds its metric function; a partial its function.
        for attr in ("_score_func", "func"):
            if callable(getattr(obj, attr, None)):
                stack.append(getattr(obj, attr))
    return out
