"""Regressions of issue 13 ("first contact with real files"): each test reproduces a finding.

Items: 1 (errors without click), 2 (integer categories with ``other``), 3 (audit without a
holdout), 5 (delta 0), 7 (delimiter hint, ``--sep``, "Other" as a real category, header-only
files), 8 (``dpsynth.release`` is the function, ``fit`` takes a schema path), 10 (docs cite
only files in the repository) and 11 (file modes).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.cli import main
from dpsynth.errors import ConfigError
from tests.paths import REPO_ROOT

SCHEMA = """name: tiny
columns:
  - {name: zip_code, kind: categorical, categories: [55401, 55402, 55403], other: true, role: quasi_identifier}
  - {name: sex, kind: categorical, categories: [F, M], role: quasi_identifier}
  - {name: age, kind: numeric, dtype: int, bounds: [0, 100], bins: 10, role: quasi_identifier}
  - {name: arrested, kind: boolean, role: sensitive}
"""


def _inputs(tmp: Path, n: int = 300, sep: str = ",") -> tuple[Path, Path]:
    rng = np.random.default_rng(13)
    df = pd.DataFrame({
        "zip_code": rng.choice([55401, 55402, 55403, 55404, 55405], n),
        "sex": rng.choice(["F", "M"], n),
        "age": rng.integers(16, 90, n),
        "arrested": rng.choice(["YES", "NO"], n),
    })
    data, schema = tmp / "data.csv", tmp / "schema.yaml"
    df.to_csv(data, index=False, sep=sep)
    schema.write_text(SCHEMA, encoding="utf-8")
    return data, schema


def _run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("dpsynth: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- item 1: no click needed


@pytest.mark.parametrize(("args", "fragment"), [
    (["budget", "--epsilon", "abc", "--delta", "1e-9"], "--epsilon"),
    (["budget", "--epsilon", "1", "--bogus"], "--bogus"),
    (["budget", "--epsilon", "1"], "--delta"),
])
def test_usage_errors_are_one_line_without_click(args: list[str], fragment: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "click", None)  # `import click` fails, as in a fresh install
    code, out, err = _run(args, capsys)
    line = _one_error_line(err)
    assert code == 2 and fragment in line and "--help" in line and out == ""


def test_unreadable_inputs_name_the_problem_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, schema = _inputs(tmp_path)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "latin1.csv").write_bytes("zip_code,sex,age,arrested\n55401,F,30,Oui\xe9\n".encode("latin-1"))
    for name, fragment in (("empty.csv", "empty"), ("latin1.csv", "UTF-8")):
        code, _, err = _run(["validate", tmp_path / name, "-s", schema], capsys)
        assert code == 2 and fragment in _one_error_line(err)


def test_evaluate_accepts_a_bundle_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _inputs(tmp_path)
    code, _, err = _run(["release", data, "-s", schema, "-m", "schema_only", "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    code, _, err = _run(["evaluate", data, tmp_path / "b", "-s", schema, "--out", tmp_path / "ev"], capsys)
    assert code == 0, err
    assert (tmp_path / "ev" / "evaluation.json").is_file()


# ------------------------------------------------- item 2: integer categories with other


def test_integer_categories_with_other_are_text_in_csv_and_parquet(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _inputs(tmp_path)
    code, _, err = _run(["release", data, "-s", schema, "-m", "independent", "--epsilon", "2",
                         "--delta", "1e-6", "--seed", "1", "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    parquet = pd.read_parquet(tmp_path / "b" / "synthetic.parquet")
    csv = pd.read_csv(tmp_path / "b" / "synthetic.csv", dtype=str)
    assert pd.api.types.is_string_dtype(parquet["zip_code"])
    assert "Other" in set(parquet["zip_code"])
    assert list(parquet["zip_code"].astype(str)) == list(csv["zip_code"])


def test_a_writer_failure_is_found_before_any_budget_is_spent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dpsynth.bundle import write as bundle

    data, schema = _inputs(tmp_path)
    ledger = tmp_path / "ledger.jsonl"

    def broken(_df: pd.DataFrame) -> pd.DataFrame:
        raise TypeError("cannot store a column")

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("fit ran although the bundle could not be written")

    monkeypatch.setattr(bundle, "escape_csv_injection", broken)
    monkeypatch.setattr(bundle, "fit", never)
    with pytest.raises(ConfigError, match="nothing was spent"):
        bundle.release(data, schema, mechanism="independent", epsilon=1.0, delta=1e-6,
                       ledger_path=ledger, out=tmp_path / "b")
    assert not ledger.exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------- item 3: audit without holdout


def test_risk_chart_clamps_error_bars_a_rounding_error_below_zero() -> None:
    from dpsynth.audit.report import risk_svg

    risk = {"value": 0.0, "ci": [4e-19, 0.2]}
    svg = risk_svg({"singling_out": {"risk": risk}, "linkability": {"risk": dict(risk)},
                     "inference": {"risk": {"value": 0.1, "ci": [None, 0.3]}}})
    assert svg.startswith("<svg")


def test_audit_without_holdout_writes_both_files_or_neither(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dpsynth.audit import report

    data, schema = _inputs(tmp_path)
    out = tmp_path / "audit"
    args = ["audit", data, data, "-s", schema, "--n-attacks", "40", "--seed", "1", "--out", out]
    code, _, err = _run(args, capsys)
    assert code in (0, 1), err  # no holdout: this used to crash drawing the risk chart
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(old) == {"audit.json", "audit.html"}
    real_write = report.write_text_atomic

    def fail_on_html(path: Path, text: str) -> None:
        if path.name == "audit.html":
            raise OSError(28, "No space left on device", str(path))
        real_write(path, text)

    monkeypatch.setattr(report, "write_text_atomic", fail_on_html)
    code, _, err = _run([*args[:-3], "2", "--out", out], capsys)
    assert code == 2 and "No space left" in _one_error_line(err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # the old pair, untouched


# ------------------------------------------------------------------- item 5: delta 0


@pytest.mark.parametrize("cmd", ["release", "fit"])
@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--delta", "0", "delta (0.0) must be > 0 and < 1"), ("--delta", "1", "delta (1.0)"),
    ("--epsilon", "nan", "epsilon (nan)"), ("--epsilon", "inf", "epsilon (inf)"),
])
def test_budget_flags_out_of_range_are_refused(cmd: str, flag: str, value: str, fragment: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _inputs(tmp_path, 50)
    budget = {"--epsilon": "1", "--delta": "1e-6"}
    budget[flag] = value
    args = [cmd, data, "-s", schema, "-m", "independent", *[x for kv in budget.items() for x in kv],
            "--out", tmp_path / "o"]
    code, _, err = _run(args, capsys)
    assert code == 2 and fragment in _one_error_line(err)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------ item 7: delimiters, Other, empty


def test_wrong_delimiter_names_the_fix_and_sep_reads_the_file(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _inputs(tmp_path, 60, sep=";")
    code, _, err = _run(["validate", data, "-s", schema], capsys)
    assert code == 4 and "pass --sep ';'" in _one_error_line(err)
    code, _, err = _run(["validate", data, "-s", schema, "--sep", ";"], capsys)
    assert code == 0, err


def test_a_category_named_like_the_other_bucket_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: o\ncolumns:\n  - {name: breed, kind: categorical, categories: [Lab, Other], other: true}\n",
                    encoding="utf-8")
    code, _, err = _run(["schema", "validate", path], capsys)
    line = _one_error_line(err)
    assert code == 4 and "'breed'" in line and "other_label" in line


def test_header_only_file_fits_and_warns_without_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, schema = _inputs(tmp_path)
    data = tmp_path / "header.csv"
    data.write_text("zip_code,sex,age,arrested\n", encoding="utf-8")
    # A large budget keeps the noisy estimate of the 0 rows well below the warning's threshold
    # of 20 (at epsilon = 1 its spread is large enough to cross it now and then).
    code, _, err = _run(["fit", data, "-s", schema, "-m", "independent", "--rho", "100",
                         "--out", tmp_path / "m"], capsys)
    assert code == 0 and "dpsynth: error" not in err
    assert "warning" in err and "DP estimate" in err


# -------------------------------------------------------------------- item 8: Python API


def test_dpsynth_release_is_the_function_and_fit_takes_a_schema_path(tmp_path: Path) -> None:
    import dpsynth
    import dpsynth.bundle.write

    assert dpsynth.release is dpsynth.bundle.write.release and callable(dpsynth.release)
    data, schema = _inputs(tmp_path, 40)
    synth = dpsynth.fit(pd.read_csv(data, dtype=str), schema, mechanism="schema_only")
    assert list(synth.sample(5, seed=0).columns) == ["zip_code", "sex", "age", "arrested"]
    result = dpsynth.release(data, str(schema), mechanism="schema_only", out=tmp_path / "b")
    assert dpsynth.verify_bundle(result.bundle).ok


# ------------------------------------------------------------ item 10: docs cite the repo


def test_docs_cite_only_files_in_the_repository() -> None:
    missing = ["reli" + "ability.md", "DES" + "IGN.md"]  # split so this file does not match itself
    offenders = []
    for folder in ("dpsynth", "docs", "audits", "tests"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".j2", ".yaml") and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                offenders += [f"{path.relative_to(REPO_ROOT)}: {m}" for m in missing if m in text]
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    offenders += [f"README.md: {m}" for m in missing if m in readme]
    assert offenders == []


# --------------------------------------------------------------------- item 11: modes


def _modes(path: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in [path, *path.rglob("*")] if p.is_file()}


def _dir_modes(path: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in [path, *path.rglob("*")] if p.is_dir()}


def test_public_outputs_are_0644_confidential_ones_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _inputs(tmp_path, 120)
    dp = ["-m", "independent", "--epsilon", "1", "--delta", "1e-6"]
    assert _run(["release", data, "-s", schema, *dp, "--out", tmp_path / "b"], capsys)[0] == 0
    assert _run(["fit", data, "-s", schema, *dp, "--out", tmp_path / "m"], capsys)[0] == 0
    assert _run(["sample", tmp_path / "m", "--rows", "20", "--out", tmp_path / "s.csv"], capsys)[0] == 0
    assert _run(["evaluate", data, tmp_path / "s.csv", "-s", schema, "--out", tmp_path / "ev"], capsys)[0] == 0
    assert _run(["audit", data, tmp_path / "s.csv", "-s", schema, "--n-attacks", "20",
                 "--out", tmp_path / "au"], capsys)[0] in (0, 1)
    assert _run(["schema", "draft", data, "-o", tmp_path / "draft.yaml"], capsys)[0] == 0
    for public in ("b", "m", "s.csv"):  # differentially private: covered by the guarantee
        assert _modes(tmp_path / public) == {0o644}, public
    assert _dir_modes(tmp_path / "b") == {0o755} and _dir_modes(tmp_path / "m") == {0o755}
    for private in ("ev", "au", "draft.yaml"):  # computed on the real data without DP
        assert _modes(tmp_path / private) == {0o600}, private
    assert _dir_modes(tmp_path / "ev") == {0o700} and _dir_modes(tmp_path / "au") == {0o700}


def test_a_misspelt_kind_names_the_column_and_the_allowed_kinds() -> None:
    from dpsynth.errors import SchemaError
    from dpsynth.tabular.schema import parse_schema

    with pytest.raises(SchemaError, match=r"column 'age': kind must be one of boolean, categorical, .*ordinal"):
        parse_schema({"columns": [{"name": "age", "kind": "numerc"}]})


def test_saved_models_are_public_files(tmp_path: Path) -> None:
    import pandas as pd

    from dpsynth import api
    from dpsynth.tabular.schema import parse_schema

    schema = parse_schema({"columns": [{"name": "a", "kind": "categorical", "categories": ["x", "y"]}]})
    synth = api.fit(pd.DataFrame({"a": ["x", "y"] * 20}), schema, mechanism="independent", epsilon=1.0, delta=1e-6)
    path = synth.save(tmp_path / "model")
    modes = {p.name: p.stat().st_mode & 0o777 for p in [path, *path.rglob("*")]}
    assert modes["model"] == 0o755 and all(m in (0o644, 0o755) for m in modes.values()), modes
