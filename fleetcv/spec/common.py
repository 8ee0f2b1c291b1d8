"""Helpers shared by the hosts.yml and search-spec loaders: YAML, keys, messages.

Runs on the driver (the laptop), and in fabfile.py through the hosts loader.
Every message built here has the house form
`<file>: <key>: <problem>. Fix: <fix>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fleetcv.errors import ConfigError
from runtime.build import import_path


def err(where: str, key: str, problem: str, fix: str) -> ConfigError:
    """Build the ConfigError for a bad key of a configuration file.

    Parameters
    ----------
    where : str
        The file (or a stand-in such as ``<built-in default hosts>``).
    key : str
        The dotted key, e.g. ``hosts[2].engines``.
    problem : str
        What is wrong, naming the bad value.
    fix : str
        What to write instead.

    Returns
    -------
    ConfigError
        ``"<where>: <key>: <problem>. Fix: <fix>"``, to be raised.
    """
    return ConfigError(f"{where}: {key}: {problem}. Fix: {fix}")


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first: int, again: int):
        super().__init__(f"the key {key!r} is given twice")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys silently: the first value would
    be ignored without a word.
    """

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise _DuplicateKey(
                        key, seen[key].line + 1, key_node.start_mark.line + 1
                    )
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error follows
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str) -> dict:
    """Read a YAML file whose top level is a mapping (an empty file gives {}).

    Parameters
    ----------
    path : Path
        The file.
    what : str
        What the file is, for the not-found message (e.g. ``"hosts"``).

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or is not a mapping.
    """
    if not path.is_file():
        raise ConfigError(
            f"{path}: {what} file not found. Fix: check the path, or create it "
            f"(see README.md)"
        )
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}: line {exc.again}: the key {exc.key!r} is given twice (first on "
            f"line {exc.first}); only one can count. Fix: keep one of them"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: not valid YAML ({exc}). Fix: correct the syntax"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got "
            f"{type(data).__name__}. Fix: write `key: value` lines"
        )
    return data


def check_keys(where: str, prefix: str, data: dict, allowed: set[str]) -> None:
    """Reject the first (in sorted order) key of `data` that is not in `allowed`.

    Raises
    ------
    ConfigError
        Naming ``<prefix><key>`` and the allowed keys.
    """
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise err(
            where,
            f"{prefix}{unknown[0]}",
            "unknown key",
            f"use one of {', '.join(sorted(allowed))}",
        )


def expect_bool(where: str, key: str, value: Any, fix: str) -> bool:
    """Return `value` if it is a YAML boolean.

    Raises
    ------
    ConfigError
        ``expected true or false, got <value>``, with `fix`.
    """
    if not isinstance(value, bool):
        raise err(where, key, f"expected true or false, got {value!r}", fix)
    return value


def expect_optional_int(where: str, key: str, value: Any, fix: str) -> int | None:
    """Return `value` if it is an integer (not a boolean) or None.

    Raises
    ------
    ConfigError
        ``expected an integer or null, got <value>``, with `fix`.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise err(where, key, f"expected an integer or null, got {value!r}", fix)
    return value


def import_object(path: str) -> Any:
    """Import ``package.module.attr`` and return the attribute."""
    return import_path(path)


def import_checked(where: str, key: str, path: Any, fix: str) -> Any:
    """Like `import_object`, for a path written in a configuration file.

    Raises
    ------
    ConfigError
        If `path` is not a dotted string, or does not import.
    """
    if not isinstance(path, str) or "." not in path:
        raise err(
            where,
            key,
            f"expected an import path like sklearn.svm.SVC, got {path!r}",
            fix,
        )
    try:
        return import_object(path)
    except ModuleNotFoundError as exc:
        raise err(
            where,
            key,
            f"cannot import {path!r} ({exc}): no installed package and nothing in "
            "the spec's code: provides it",
            f"{fix}; for your own module, list its folder or .py file under code: "
            "(relative to the spec's folder)",
        ) from exc
    except (ImportError, AttributeError) as exc:
        raise err(where, key, f"cannot import {path!r} ({exc})", fix) from exc


def plain(v: Any) -> Any:
    """Numpy scalars to Python ones, so candidates round-trip through JSON exactly."""
    if isinstance(v, np.generic):
        return v.item()
    return v
