"""The house's import rules, read from the source with `ast` (no module is imported).

Every import counts, function-level ones included: no cycle anywhere; the
host package `runtime` imports nothing of the laptop's `fleetcv`; neither
package imports the command line, Fabric or Invoke; the reports read run
directories, never the dispatcher.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

ROOT = Path(REPO)


def _modules() -> dict[str, Path]:
    """Every project module by dotted name: runtime/**, fleetcv/**, tasks.py, fabfile.py."""
    mods = {p.stem: ROOT / p.name for p in (Path("tasks.py"), Path("fabfile.py"))}
    paths = [*(ROOT / "runtime").rglob("*.py"), *(ROOT / "fleetcv").rglob("*.py")]
    for path in paths:
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path) -> set[str]:
    """Dotted names that module `name` imports, absolute, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {
        name: {m for m in _imports(name, path) if m in mods and m != name}
        for name, path in mods.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None (depth-first, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_a_cycle_and_function_level_imports(tmp_path):
    # The rule below cannot pass by reading nothing: a planted cycle,
    # hidden in a function, is found.
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from runtime.b import g\n")
    assert "runtime.b" in _imports("runtime.a", a)
    assert _cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert _cycle({"x": {"y"}, "y": set()}) is None


def test_no_import_cycle_in_the_project():
    graph = _graph()
    assert len(graph) > 40, sorted(graph)  # the whole tree was read
    assert _cycle(graph) is None


def test_the_host_package_imports_nothing_of_fleetcv():
    graph = _graph()
    engine = [n for n in graph if n == "runtime" or n.startswith("runtime.")]
    assert len(engine) >= 5
    for name in engine:
        others = {m for m in graph[name] if not m.startswith("runtime")}
        assert not others, f"{name} imports {others}"


#: The SSH backend's modules: the only ones that may import Fabric, Invoke and paramiko.
SSH_BACKEND = {"fleetcv.backends.ssh", "fleetcv.backends.hostkeys"}


def test_the_packages_import_neither_the_command_line_nor_fabric_outside_the_ssh_backend():
    mods = _modules()
    assert SSH_BACKEND <= set(mods)
    for name, path in mods.items():
        if not name.startswith(("runtime", "fleetcv")):
            continue
        imported = _imports(name, path)
        roots = {m.split(".")[0] for m in imported}
        assert not roots & {"tasks", "fabfile"}, name
        if name not in SSH_BACKEND:
            # (Fabric is made on Invoke: its exceptions are the SSH backend's too.)
            assert not roots & {"fabric", "invoke", "paramiko"}, name
            # The SSH backend loads on first use (fleetcv.backends.BACKENDS).
            assert not set(imported) & SSH_BACKEND, name


def test_reports_read_run_directories_not_the_dispatcher():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("fleetcv.report") or name.startswith("fleetcv.rundir"):
            assert not {d for d in deps if d.startswith("fleetcv.dispatch")}, name
        if name.startswith("fleetcv.kinds"):
            assert not {d for d in deps if d.startswith("fleetcv.dispatch")}, name
