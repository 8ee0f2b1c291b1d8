"""The value expressions of a search spec: `logspace(-4, 0, 5)`, `loguniform(1e-3, 1)`.

Runs on the driver (the laptop). A spec's parameter values may be written as
a call: a numpy grid function (GRID_FUNCS), expanded here into its values, or
a scipy distribution (DIST_FUNCS), kept as a `Distribution` that a random
search samples. `grid_values` is the one evaluator of grid expressions, for
the spec and for the command line's `--range`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetcv.spec.common import err, plain

#: numpy functions a grid value may be written as, e.g. logspace(-4, 0, 5).
GRID_FUNCS = {"logspace", "linspace", "geomspace", "arange"}
#: scipy.stats distributions a random search may sample, e.g. loguniform(1e-3, 1).
DIST_FUNCS = {"loguniform", "uniform", "randint"}
#: `name(args)`: group 1 is the name, group 2 the arguments.
_EXPR = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")
_NUMBERS_FIX = "use plain numbers, e.g. logspace(-1, 2, 4)"


@dataclass(frozen=True)
class Distribution:
    """A parameter distribution written as `name(args)` in a spec."""

    name: str
    args: tuple

    def frozen(self):
        """The scipy.stats frozen distribution that ParameterSampler draws from."""
        # Deferred: scipy.stats is slow to import, and only a random search needs it.
        from scipy import stats

        a, b = self.args
        if self.name == "loguniform":
            return stats.loguniform(a, b)
        if self.name == "uniform":
            # Written as uniform(low, high), scipy wants (loc, scale).
            return stats.uniform(a, b - a)
        return stats.randint(a, b)


def is_call(text: str) -> bool:
    """Whether `text` is written as a call, ``name(args)`` (of any name)."""
    return _EXPR.match(text) is not None


def _literal_args(args: str) -> tuple:
    """The arguments of a call as Python literals (ValueError/SyntaxError if not)."""
    return ast.literal_eval(f"({args},)") if args.strip() else ()


def grid_values(text: str) -> list | None:
    """Evaluate a numpy grid expression such as ``logspace(-4, 0, 5)``.

    Parameters
    ----------
    text : str
        The expression: one of GRID_FUNCS called with literal arguments.

    Returns
    -------
    list or None
        The values, as plain Python numbers (possibly none, e.g. for
        ``arange(1, 1)``); None when `text` is not a call of a GRID_FUNCS
        function.

    Raises
    ------
    ValueError, SyntaxError
        If the arguments are not Python literals.
    TypeError, ValueError, ZeroDivisionError
        As numpy raises them for arguments it does not accept.
    """
    m = _EXPR.match(str(text))
    if not m or m.group(1) not in GRID_FUNCS:
        return None
    values = getattr(np, m.group(1))(*_literal_args(m.group(2)))
    return [plain(v) for v in values]


def parse_value_expr(where: str, key: str, text: str, search: str) -> Any:
    """Read the expression a spec gives as a parameter's values.

    Parameters
    ----------
    where, key : str
        The spec file and the parameter's key, for messages.
    text : str
        The expression, e.g. ``logspace(-1, 2, 4)`` or ``loguniform(1e-3, 1)``.
    search : {"grid", "random"}
        The kind of search: only a random one takes a distribution.

    Returns
    -------
    list or Distribution
        A grid expression's values, or the distribution.

    Raises
    ------
    ConfigError
        If the text is no such expression, or its arguments are bad.
    """
    m = _EXPR.match(text)
    if not m or m.group(1) not in GRID_FUNCS | DIST_FUNCS:
        raise err(
            where,
            key,
            f"cannot read {text!r}",
            "write a list of values, or one of "
            + ", ".join(f"{f}(...)" for f in sorted(GRID_FUNCS | DIST_FUNCS)),
        )
    fname = m.group(1)
    try:
        args = _literal_args(m.group(2))
    except (ValueError, SyntaxError) as exc:
        raise err(where, key, f"bad arguments in {text!r}", _NUMBERS_FIX) from exc
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise err(where, key, f"bad arguments in {text!r}", _NUMBERS_FIX)
    if fname in GRID_FUNCS:
        try:
            values = grid_values(text)
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            # numpy's own words for arguments it refuses (a negative count,
            # a zero step).
            problem = f"{text!r}: {str(exc).rstrip('.')}"
            raise err(where, key, problem, f"see numpy.{fname}") from exc
        if not values:
            raise err(
                where, key, f"{text!r} gives no values", "check the bounds and count"
            )
        return values
    if search != "random":
        raise err(
            where,
            key,
            f"{text!r} is a distribution, which a grid search cannot enumerate",
            "set `search: random` with n_iter, or give a list",
        )
    return Distribution(fname, _distribution_bounds(where, key, text, fname, args))


def _distribution_bounds(
    where: str, key: str, text: str, fname: str, args: tuple
) -> tuple:
    """Check the (low, high) of a distribution written as `text`."""
    if len(args) != 2:
        raise err(
            where,
            key,
            f"{fname} takes two numbers (low, high), got {text!r}",
            f"write e.g. {fname}(1, 10)",
        )
    low, high = args
    if not low < high or (fname == "loguniform" and low <= 0):
        raise err(
            where,
            key,
            f"{text!r}: need {'0 < ' if fname == 'loguniform' else ''}low < high",
            f"write e.g. {fname}(1e-3, 1)"
            if fname != "randint"
            else "write e.g. randint(1, 10)",
        )
    if fname == "randint" and not all(isinstance(a, int) for a in args):
        raise err(
            where, key, f"{text!r}: randint needs integers", "write e.g. randint(1, 10)"
        )
    return (low, high)
