"""The import layers that keep private data behind the gate, checked on the source with ``ast``.

- ``mechanisms/``, ``pgm/`` and ``neural/`` import neither :mod:`dpsynth.backends` (private
  rows) nor :mod:`dpsynth.noise` (DP noise): they read data only through
  :class:`dpsynth.gate.PrivateData`, whose methods charge and then read.
- Only the gate draws DP noise; only the gate and the API (which opens the engine) import a
  backend.
- Nothing reaches into a private attribute of a table or backend (``_table``), and no module
  of the package draws float noise from ``numpy.random``.

Each rule is shown to have teeth: the same scan flags a planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dpsynth"
SEALED = ("mechanisms", "pgm", "neural")
FORBIDDEN_IN_SEALED = ("dpsynth.backends", "dpsynth.noise")
NOISE_CALLS = {"normal", "laplace", "gumbel", "standard_normal", "exponential"}


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
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


@pytest.mark.parametrize("layer", SEALED)
def test_sealed_layers_reach_private_data_only_through_the_gate(layer: str) -> None:
    bad = {}
    for path in (PACKAGE / layer).rglob("*.py"):
        found = _violations(path.read_text(encoding="utf-8"), sealed=True)
        if found:
            bad[str(path.relative_to(PACKAGE))] = found
    assert not bad, bad


def test_only_the_gate_draws_dp_noise_and_only_gate_and_api_open_backends() -> None:
    noise_users, backend_users = set(), set()
    for path in _modules():
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith("backends/") or rel == "noise.py":
            continue
        names = _imports(ast.parse(path.read_text(encoding="utf-8")))
        if any(n == "dpsynth.noise" or n.startswith("dpsynth.noise.") for n in names):
            noise_users.add(rel)
        if any(n == "dpsynth.backends" or n.startswith("dpsynth.backends.") for n in names):
            backend_users.add(rel)
    assert noise_users == {"gate.py"}, noise_users
    assert backend_users <= {"gate.py", "api.py"}, backend_users


def test_no_module_reads_private_attributes_or_draws_numpy_noise() -> None:
    bad = {}
    for path in _modules():
        found = [v for v in _violations(path.read_text(encoding="utf-8"), sealed=False)
                 if not v.startswith("imports")]
        if found and _package_of(path) != "backends":
            bad[str(path.relative_to(PACKAGE))] = found
    assert not bad, bad


@pytest.mark.parametrize("planted", [
    "from dpsynth.backends.numpy import NumpyBackend\n",
    "import dpsynth.noise\n",
    "from dpsynth import noise\n",
    "def f(b):\n    return b._table\n",
    "def f(b):\n    return getattr(b, '_table')\n",
    "import numpy as np\ndef f(rng):\n    return np.random.default_rng(0).normal(size=3)\n",
])
def test_the_scan_catches_planted_violations(planted: str) -> None:
    assert _violations(planted, sealed=True)
