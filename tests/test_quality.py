"""Quality gates: ruff, strict mypy and the import-layer contract, run as tests; the lock file
pins what pyproject names; no unwanted distribution installed; no private paho API; no string
imports of our own packages."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES: list[str] = PYPROJECT["tool"]["importlinter"]["root_packages"]
# Removed on purpose: grafana-client pulls niquests -> urllib3-future, whose .pth file rewrites
# urllib3 at every interpreter start; the others were unused.
UNWANTED = ("urllib3-future", "niquests", "grafana-client", "mirakuru")


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def _python_files() -> list[Path]:
    return [p for pkg in (*PACKAGES, "bench") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_ruff_check_finds_nothing() -> None:
    proc = _run(sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise",
                ".")
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy_strict_finds_nothing() -> None:
    proc = _run(sys.executable, "-m", "mypy")  # files and strictness from pyproject.toml
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"


def test_import_layers_are_kept() -> None:
    proc = _run(BIN / "lint-imports", "--no-cache")
    assert proc.returncode == 0, f"an import contract is broken:\n{proc.stdout}{proc.stderr}"
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def test_no_module_imports_itself_round_a_cycle() -> None:
    """The layers forbid cycles between packages; this forbids them between modules too."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph.modules):
        if start in state:
            continue
        path, todo = [start], [iter(sorted(graph.find_modules_directly_imported_by(start)))]
        state[start] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.find_modules_directly_imported_by(nxt))))


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {_name(m.group(1)): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock, re.M)}
    project = PYPROJECT["project"]
    wanted = {_name(r) for r in (*project["dependencies"],
                                 *project["optional-dependencies"]["dev"])}
    assert wanted - set(pinned) == set(), "regenerate requirements.lock (see README)"
    assert "psycopg-binary" in pinned  # psycopg[binary]
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n\n", 1)[-1].strip())
    assert all("--hash=sha256:" in b for b in blocks if "==" in b.split("\n", 1)[0])
    assert set(UNWANTED).isdisjoint(pinned)


@pytest.mark.parametrize("dist", UNWANTED)
def test_an_unwanted_distribution_is_not_installed(dist: str) -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution(dist)


def test_no_private_paho_api() -> None:
    private = re.compile(r"_sockpair[RW]\b|\._topic\b")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in _python_files()
             for n, line in enumerate(p.read_text().splitlines(), 1) if private.search(line)]
    assert found == [], "paho's private attributes used at " + ", ".join(found)


def test_no_string_imports_of_our_own_modules() -> None:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("import_module", "__import__") or not node.args:
                continue
            arg = node.args[0]
            target = arg.value if isinstance(arg, ast.Constant) else None
            if not isinstance(target, str) or target.split(".")[0] in PACKAGES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], "import our modules with `import`, not by string: " + ", ".join(found)
