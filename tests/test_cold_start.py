"""Cold start: which modules a ``dpsynth`` process imports, command by command (no timings).

A user runs one process per command, so every module a command imports is start-up time paid
on every run. Each test runs a fresh interpreter under ``-X importtime``, reads the list of
modules it imported from stderr and checks two things:

- no optional heavy package is imported where it is not needed: scikit-learn, torch, Opacus,
  matplotlib, PySpark, DuckDB and jinja2 (the audit, neural, report and engine extras), nor
  ``opendp.extras`` (``opendp.prelude`` imports it, and with it scikit-learn: 1-5 s);
- the number of imported modules stays within a budget: what was measured when the test was
  written (Python 3.11, pandas 3, networkx 3, opendp 0.16) plus a margin. A new eager import of a
  large package breaks the budget; raise it only for an import the command really needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.paths import REPO_ROOT, TEST_DATA

HEAVY = ("sklearn", "torch", "opacus", "matplotlib", "pyspark", "duckdb", "jinja2", "opendp.extras")
# Measured when written: 151 (--version), 1_157 (the MST fit path's modules), 1_202 (fit), 1_138
# (sample); before the cold-start work: ~1_200 for --version and ~2_170 for fit (scikit-learn
# through opendp.prelude). The margins are about 10%.
VERSION_BUDGET = 200
FIT_PATH_BUDGET = 1_280
COMMAND_BUDGET = 1_330
CODED_COLUMNS = ("age", "workclass", "education", "sex", "hours-per-week", "income>50K")


def imported_modules(args: list[str], *, cwd: Path = REPO_ROOT) -> set[str]:
    """The modules a fresh ``python -X importtime ARGS`` imports (the process must succeed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                modules.add(name)
    assert modules, "-X importtime reported no modules"
    return modules


def heavy_in(modules: set[str]) -> list[str]:
    """The heavy packages (of HEAVY) among ``modules``."""
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def test_the_parser_sees_a_heavy_import() -> None:
    """The check has teeth: a process that imports jinja2 is caught."""
    modules = imported_modules(["-c", "import jinja2"])
    assert heavy_in(modules) == ["jinja2"]


def test_version_imports_neither_numpy_nor_pandas() -> None:
    """``dpsynth --version`` answers before the command modules (and their engines) load."""
    modules = imported_modules(["-m", "dpsynth", "--version"])
    assert heavy_in(modules) == []
    assert not {"numpy", "pandas", "networkx", "opendp", "scipy"} & modules
    assert len(modules) <= VERSION_BUDGET, f"{len(modules)} modules > budget {VERSION_BUDGET}"


def test_the_mst_fit_path_imports_no_heavy_extra() -> None:
    """The API, the CLI with its commands, MST, the model engine, the numpy engine, the bundle
    writer, and both OpenDP samplers used once: none of them imports a heavy extra."""
    code = (
        "import numpy as np\n"
        "import dpsynth.api, dpsynth.cli, dpsynth.mechanisms.mst, dpsynth.pgm\n"
        "import dpsynth.backends.numpy, dpsynth.bundle.write\n"
        "from dpsynth.privacy.noise import discrete_gaussian, noisy_max\n"
        "assert dpsynth.cli.app.registered_commands\n"
        "discrete_gaussian(np.zeros(3, dtype=np.int64), 1.0)\n"
        "noisy_max([0.0, 1.0], 1.0)\n"
    )
    modules = imported_modules(["-c", code])
    assert heavy_in(modules) == []
    assert {"opendp.measurements", "dpsynth.mechanisms.mst", "dpsynth.bundle.write"} <= modules
    assert len(modules) <= FIT_PATH_BUDGET, f"{len(modules)} modules > budget {FIT_PATH_BUDGET}"


@pytest.fixture(scope="module")
def coded_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small integer-coded Adult table (600 rows, 6 columns) and its public schema."""
    from dpsynth.tabular.schema import dump_schema, from_pgm_domain

    folder = tmp_path_factory.mktemp("cold")
    domain = json.loads((TEST_DATA / "adult-coded-domain.json").read_text())
    frame = pd.read_csv(TEST_DATA / "adult-coded.csv", usecols=list(CODED_COLUMNS), nrows=600)
    data = folder / "coded.csv"
    frame.to_csv(data, index=False)
    schema = folder / "schema.yaml"
    dump_schema(from_pgm_domain({c: int(domain[c]) for c in CODED_COLUMNS}), schema)
    return data, schema


def test_fit_and_sample_commands_import_no_heavy_extra(coded_input: tuple[Path, Path], tmp_path: Path) -> None:
    """A real ``dpsynth fit --mechanism mst`` and ``dpsynth sample``, each in its own process."""
    data, schema = coded_input
    model = tmp_path / "model"
    fit = imported_modules(["-m", "dpsynth", "fit", str(data), "--schema", str(schema), "--mechanism", "mst",
                            "--rho", "1", "--out", str(model)])
    assert (model / "synthesizer.json").is_file()
    out = tmp_path / "synthetic.csv"
    sample = imported_modules(["-m", "dpsynth", "sample", str(model), "--rows", "50", "--seed", "0",
                               "--out", str(out)])
    assert len(pd.read_csv(out)) == 50
    for name, modules in (("fit", fit), ("sample", sample)):
        assert heavy_in(modules) == [], name
        assert len(modules) <= COMMAND_BUDGET, f"{name}: {len(modules)} modules > budget {COMMAND_BUDGET}"
    assert "opendp.measurements" in fit  # the fit drew its noise from OpenDP ...
    assert "opendp" not in sample  # ... sampling is post-processing and loads no noise sampler
    # mechanisms are imported on first lookup: fit -m mst loads MST's module alone, sample none
    others = {"dpsynth.mechanisms.aim", "dpsynth.mechanisms.dpsgd", "dpsynth.neural.train"}
    assert "dpsynth.mechanisms.mst" in fit and not others & fit
    assert not {"dpsynth.mechanisms.mst", *others} & sample
    assert not {"dpsynth.backends.duckdb", "dpsynth.backends.spark"} & (fit | sample)
