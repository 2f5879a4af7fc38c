"""The package's shape: import layering (import-linter's contracts in pyproject.toml), no import cycle, small modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "tunebench"


def test_the_layer_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") >= 10


def test_no_module_imports_itself_back():
    """No cycle at all, function-level imports included (grimp sees every import statement)."""
    graph = grimp.build_graph("tunebench", exclude_type_checking_imports=True)
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    cycles = [c for c in nx.simple_cycles(edges) if len(c) > 1]
    assert cycles == []


def test_no_module_is_over_about_400_lines():
    sizes = {p.relative_to(SOURCE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in SOURCE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}
