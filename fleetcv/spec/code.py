"""The `code` and `requirements` sections of a search spec: the user's own code and packages.

Runs on the driver. ``code: [myproj/, features.py]`` names folders and
Python files of the user's project, relative to the spec's folder. They are
snapshotted by digest (`runtime.usercode`): the driver imports them
from its snapshot to check the spec's import paths and build its estimator,
and every engine imports them from the run's snapshot on its own host
(shipped with the folds, `invoke search`), for that run only.
``requirements:`` are pip requirement lines (or wheels' paths) that every
host installs before the run (`fleetcv.dispatch.requirements`); this
machine must have them already, as it builds the estimator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fleetcv.spec.common import err
from runtime import usercode

#: Where the driver keeps its snapshots of specs' code (this machine's
#: default workdir; a run also snapshots into the local host's workdir).
DRIVER_CACHE = "~/.cache/fleetcv"
_FIX = "list folders or .py files of your project, relative to the spec's folder: code: [myproj/, features.py]"


def parse_code(where: str, raw: Any, base: Path) -> tuple[Path, ...]:
    """The spec's ``code`` entries as absolute paths, checked.

    Raises
    ------
    ConfigError
        For a value that is not a list of paths, a path that does not exist
        or is neither a folder nor a .py file, or two entries of one name.
    """
    out, names = [], {}
    for i, (key, item) in enumerate(_lines(where, "code", raw, "path", _FIX)):
        path = (base / os.path.expanduser(item)).resolve()
        if not path.exists():
            raise err(
                where,
                key,
                f"{item!r} does not exist (looked for {path})",
                "give a folder or .py file of your project, relative to the spec's folder",
            )
        if not (path.is_dir() or path.suffix == ".py"):
            raise err(
                where,
                key,
                f"{item!r} is neither a folder nor a .py file",
                "list the package folder or the module file itself",
            )
        if path.name in names:
            raise err(
                where,
                key,
                f"{item!r} has the same name as code[{names[path.name]}]: both "
                f"would import as {path.stem!r}",
                "keep one of them, or rename one",
            )
        names[path.name] = i
        out.append(path)
    return tuple(out)


def use_code(entries: tuple[Path, ...]) -> str | None:
    """Make the spec's code importable here (its snapshot); None and no code drop it.

    Returns
    -------
    str or None
        The code's digest.
    """
    if not entries:
        usercode.activate(None)
        return None
    snap = usercode.snapshot(list(entries), Path(DRIVER_CACHE).expanduser())
    usercode.activate(snap)
    return snap.name


#: A requirement line starts with a project name (pip checks the rest).
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*([<>=!~;@ ].*)?$"
)
_REQ_FIX = "write pip requirement lines, e.g. requirements: [lightgbm==4.6.0], or the path of a wheel"


def parse_requirements(where: str, raw: Any, base: Path) -> tuple[str, ...]:
    """The spec's ``requirements``: pip requirement lines, a wheel's path made absolute.

    Raises
    ------
    ConfigError
        For a value that is not a list of lines, a line that is not a
        requirement, or a wheel file that does not exist.
    """
    out = []
    for key, line in _lines(where, "requirements", raw, "line", _REQ_FIX):
        if line.endswith(".whl"):
            path = (base / os.path.expanduser(line)).resolve()
            if not path.is_file():
                raise err(
                    where,
                    key,
                    f"{line!r} does not exist (looked for {path})",
                    "give the wheel's path relative to the spec's folder",
                )
            out.append(str(path))
        elif _REQUIREMENT.match(line):
            out.append(line)
        else:
            raise err(where, key, f"{line!r} is not a pip requirement", _REQ_FIX)
    return tuple(out)


def _lines(
    where: str, key: str, raw: Any, what: str, fix: str
) -> list[tuple[str, str]]:
    """A section's list of strings (one string: a list of one) as (key[i], stripped value)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise err(where, key, f"expected a list of {what}s, got {raw!r}", fix)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item.strip():
            raise err(where, f"{key}[{i}]", f"expected a {what}, got {item!r}", fix)
        out.append((f"{key}[{i}]", item.strip()))
    return out
