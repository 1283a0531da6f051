"""The import layers that keep private data behind the gate, checked on the source with ``ast``.

- ``mechanisms/``, ``pgm/`` and ``neural/`` import neither :mod:`dpsynth.backends` (private
  rows) nor :mod:`dpsynth.privacy.noise` (DP noise): they read data only through
  :class:`dpsynth.privacy.gate.PrivateData`, whose methods charge and then read.
- Only the gate draws DP noise; only the API (which opens the engine) imports a backend.
- :mod:`dpsynth.arrays` (the typed array aliases) is a leaf that imports nothing of dpsynth,
  so every layer may use it.
- The privacy core imports nothing of dpsynth but ``errors`` and ``arrays``; the model engine (``pgm``)
  knows nothing of privacy or engines; nothing outside ``cli`` imports it; no module imports
  form a cycle, lazy and ``TYPE_CHECKING`` imports included.
- Nothing reaches into a private attribute of a table or backend (``_table``), and no module
  of the package draws float noise from ``numpy.random``.

Each rule is shown to have teeth: the same scan flags a planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import PACKAGE_DIR

SEALED = ("mechanisms", "pgm", "neural")
FORBIDDEN_IN_SEALED = ("dpsynth.backends", "dpsynth.privacy.noise")
NOISE_CALLS = {"normal", "laplace", "gumbel", "standard_normal", "exponential"}
LEAVES = ("dpsynth.errors", "dpsynth.arrays")  # modules every layer may import


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _violations(source: str, *, sealed: bool) -> list[str]:
    tree = ast.parse(source)
    out = []
    for name in _imports(tree):
        if sealed and any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_SEALED):
            out.append(f"imports {name}")
        if sealed and name == "dpsynth.privacy.noise":
            out.append(f"imports {name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "_table":
            out.append("reads ._table")
        if isinstance(node, ast.Constant) and node.value == "_table":
            out.append("names '_table'")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in NOISE_CALLS and "random" in ast.unparse(node.func.value)):
            out.append(f"draws numpy float noise ({ast.unparse(node.func)})")
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR).parts[0]


@pytest.mark.parametrize("layer", SEALED)
def test_sealed_layers_reach_private_data_only_through_the_gate(layer: str) -> None:
    bad = {}
    for path in (PACKAGE_DIR / layer).rglob("*.py"):
        found = _violations(path.read_text(encoding="utf-8"), sealed=True)
        if found:
            bad[str(path.relative_to(PACKAGE_DIR))] = found
    assert not bad, bad


def test_only_the_gate_draws_dp_noise_and_only_gate_and_api_open_backends() -> None:
    noise_users, backend_users = set(), set()
    for path in _modules():
        rel = str(path.relative_to(PACKAGE_DIR))
        if rel.startswith("backends/") or rel == "privacy/noise.py":
            continue
        names = _imports(ast.parse(path.read_text(encoding="utf-8")))
        if any(n == "dpsynth.privacy.noise" or n.startswith("dpsynth.privacy.noise.") for n in names):
            noise_users.add(rel)
        if any(n == "dpsynth.backends" or n.startswith("dpsynth.backends.") for n in names):
            backend_users.add(rel)
    assert noise_users == {"privacy/gate.py", "privacy/frame_gate.py"}, noise_users
    # relational/sources.py joins linked tables' files in DuckDB (SQL text helpers only); it
    # opens no counting backend: every count of a linked release goes through api.fit's gate.
    assert backend_users <= {"api.py", "relational/sources.py"}, backend_users
    joined = _imports(ast.parse((PACKAGE_DIR / "relational" / "sources.py").read_text(encoding="utf-8")))
    assert {n for n in joined if n.startswith("dpsynth.backends")} == {
        "dpsynth.backends.frames", "dpsynth.backends.frames.normalise_frame", "dpsynth.backends.sql",
        "dpsynth.backends.sql.DUCKDB", "dpsynth.backends.duckdb", "dpsynth.backends.duckdb.file_sql"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _dpsynth_imports(path: Path) -> set[str]:
    return {n for n in _imports(ast.parse(path.read_text(encoding="utf-8"))) if n.startswith("dpsynth")}


def test_the_array_aliases_are_a_leaf() -> None:
    path = PACKAGE_DIR / "arrays.py"
    assert _dpsynth_imports(path) == set()
    assert _imports(ast.parse(path.read_text(encoding="utf-8"))) <= {"numpy", "numpy.typing", "__future__",
                                                                    "__future__.annotations"}


def test_the_privacy_core_imports_nothing_of_dpsynth_but_the_leaves() -> None:
    bad = {}
    for path in (PACKAGE_DIR / "privacy").rglob("*.py"):
        found = sorted(n for n in _dpsynth_imports(path) if not n.startswith(("dpsynth.privacy", *LEAVES)))
        if found:
            bad[path.name] = found
    assert not bad, bad


def test_the_model_engine_knows_nothing_of_privacy_or_engines() -> None:
    bad = {}
    for path in (PACKAGE_DIR / "pgm").rglob("*.py"):
        found = sorted(n for n in _dpsynth_imports(path) if n.startswith(("dpsynth.privacy", "dpsynth.backends")))
        if found:
            bad[path.name] = found
    assert not bad, bad


def test_nothing_outside_the_cli_imports_it() -> None:
    bad = {}
    for path in _modules():
        rel = str(path.relative_to(PACKAGE_DIR))
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        found = sorted(n for n in _dpsynth_imports(path) if n.startswith("dpsynth.cli"))
        if found:
            bad[rel] = found
    assert not bad, bad


def test_no_import_cycles_between_modules() -> None:
    """Every import counts, lazy and TYPE_CHECKING ones included."""
    import networkx as nx

    modules = {_module_name(p): p for p in _modules()}
    graph = nx.DiGraph()
    for name, path in modules.items():
        for imp in _dpsynth_imports(path):
            target = imp if imp in modules else imp.rsplit(".", 1)[0]
            if target in modules and target != name and not name.startswith(target + "."):
                graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]


def test_no_module_reads_private_attributes_or_draws_numpy_noise() -> None:
    bad = {}
    for path in _modules():
        found = [v for v in _violations(path.read_text(encoding="utf-8"), sealed=False)
                 if not v.startswith("imports")]
        if found and _package_of(path) != "backends":
            bad[str(path.relative_to(PACKAGE_DIR))] = found
    assert not bad, bad


@pytest.mark.parametrize("planted", [
    "from dpsynth.backends.numpy import NumpyBackend\n",
    "import dpsynth.privacy.noise\n",
    "from dpsynth.privacy import noise\n",
    "def f(b):\n    return b._table\n",
    "def f(b):\n    return getattr(b, '_table')\n",
    "import numpy as np\ndef f(rng):\n    return np.random.default_rng(0).normal(size=3)\n",
])
def test_the_scan_catches_planted_violations(planted: str) -> None:
    assert _violations(planted, sealed=True)
