"""The code passes the linters it is configured for; the core is pure: it imports no shell
module and reads no file, clock, environment or process, and every module is one or the
other."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import REPO

CORE = {"events", "outcomes", "codec", "strict", "state", "attempts", "transitions", "fold",
        "policy", "config", "configfile", "schema", "problems", "expand", "errors",
        "timestamps", "defaults", "copies", "selection", "runners", "jobfilter", "axes",
        "slurmscript"}
SHELL = {"journal", "reader", "reading", "lock", "fs", "host", "clock", "sync",
         "runner", "batch", "echo", "attempt", "scheduler", "reaper", "jobfiles", "progress",
         "failpoint", "commands", "opened", "slots", "gitinfo", "statusview", "identify",
         "version", "writing", "grammar", "chooser", "batchplan", "copyreader",
         "recovery", "checkpoint", "cli", "session", "card", "render", "repair", "__init__",
         "__main__", "watch", "tabular", "results", "api", "runners_view"}
# What the core may import besides itself: computation only. No os, time, socket, pathlib,
# subprocess, signal, random, uuid, logging: the shell passes in what they would give.
CORE_MAY_IMPORT = {"__future__", "attrs", "collections.abc", "datetime", "enum", "fnmatch",
                   "hashlib", "itertools", "json", "math", "re", "sys", "typing"}
# Reading a config's bytes takes parsers; still no file is opened (the shell reads it).
CONFIG_MAY_IMPORT = {"cattrs", "cattrs.cols", "cattrs.errors", "posixpath", "shlex",
                     "tomllib", "yaml"}
CONFIG = {"config", "configfile", "schema", "problems", "expand"}
# What reads or writes the world even through an allowed module (or one added to the list
# later): files, the clock, the environment, the process, the terminal.
FORBIDDEN_BUILTINS = {"open", "print", "input", "breakpoint", "__import__"}
FORBIDDEN = {
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today", "time.time", "time.time_ns", "time.monotonic",
    "time.perf_counter", "time.localtime", "time.gmtime", "time.strftime", "os.environ",
    "os.getenv", "os.getpid", "os.urandom", "os.system", "sys.argv", "sys.orig_argv",
    "sys.stdin", "sys.stdout", "sys.stderr", "sys.exit", "subprocess.run",
    "subprocess.Popen", "subprocess.check_output", "pathlib.Path", "io.open", "socket.socket",
}


def test_ruff_is_clean() -> None:
    """`ruff check` finds nothing in the package and the tests."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "journalq", "tests"],
                          cwd=REPO, capture_output=True, text=True)
    assert 0 == done.returncode, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    """`mypy` (strict, as configured in pyproject.toml) finds nothing."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True)
    assert 0 == done.returncode, done.stdout + done.stderr


def test_every_module_is_core_or_shell() -> None:
    """A new module says which side it is on, so the purity checks below cannot miss it."""
    package = REPO / "journalq"
    modules = {path.stem for path in package.glob("*.py")}
    modules |= {path.parent.name for path in package.glob("*/__init__.py")}

    assert set() == CORE & SHELL
    assert modules == CORE | SHELL


def _tree(module: str) -> ast.Module:
    return ast.parse((REPO / "journalq" / f"{module}.py").read_text())


def _imports(tree: ast.Module) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_only_computation(module: str) -> None:
    """The functional core imports the core and an allow-list of stdlib modules (and the
    config's parsers), never the shell: no clock, no file, no process, no environment."""
    allowed = CORE_MAY_IMPORT | (CONFIG_MAY_IMPORT if module in CONFIG else set())
    allowed |= {f"journalq.{name}" for name in CORE} | {"journalq"}

    assert set() == _imports(_tree(module)) - allowed


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """`a.b.c` as the full name of what it refers to, `a` resolved through the imports."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, bound)
        return None if base is None else f"{base}.{node.attr}"
    return None


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_touches_no_file_clock_or_environment(module: str) -> None:
    """Even through allowed modules, the core calls nothing that reads the world: `open`,
    `print`, `datetime.now()`, `time.time()`, `sys.argv`, `os.environ`, `subprocess.run`..."""
    tree = _tree(module)
    bound: dict[str, str] = {}  # name in the module -> what it was imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update({(a.asname or a.name).split(".")[0]: (a.name if a.asname
                          else a.name.split(".")[0]) for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            bound.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    used = {f"{qualified} (imported)" for qualified in bound.values() if qualified in FORBIDDEN}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS - set(bound):
            used.add(f"{node.id} (line {node.lineno})")
        elif isinstance(node, ast.Attribute) and _dotted(node, bound) in FORBIDDEN:
            used.add(f"{_dotted(node, bound)} (line {node.lineno})")

    assert set() == used


def test_the_version_is_one() -> None:
    """`journalq.__version__` (kept a literal: the package imports nothing at start-up) and
    `journalq.version.VERSION` (what sessions record and setup.cfg reads) agree."""
    import journalq
    from journalq.version import VERSION

    assert VERSION == journalq.__version__


def _package_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (any import: at the top, in a function, for
    the type checker only), `journalq.commands.run` style names."""
    modules = {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"):
               path for path in (REPO / "journalq").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} & modules.keys()
                found |= {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names} & modules.keys()
        graph[name] = found - {name, "journalq"}  # `from journalq import x` names x
    return graph


def test_imports_have_no_cycle_and_a_bounded_height() -> None:
    """The README's promise: imports point one way, with no cycle, and the tower stays
    low (twelve floors from `__main__` down to `events`, as the import graph draws it)."""
    graph = _package_graph()
    height: dict[str, int] = {}

    def floor(module: str, path: tuple[str, ...]) -> int:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in height:
            height[module] = 1 + max((floor(dep, (*path, module)) for dep in graph[module]),
                                     default=0)
        return height[module]

    floors = max(floor(module, ()) for module in graph)
    assert floors <= 12, sorted(height.items(), key=lambda item: -item[1])[:6]


def test_no_module_is_over_300_lines() -> None:
    """Small modules, one noun each (the README's Development section)."""
    sizes = {path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
             for path in (REPO / "journalq").rglob("*.py")}

    assert {} == {path: lines for path, lines in sizes.items() if lines > 300}
