"""Shared fixtures of the release tests: small Adult samples, schemas, and a CLI runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tests.paths import ADULT_DIR

CANARY_TEXT = "ZQXCANARYPRIVATE7731"
CANARY_NUMBER = "987654.321"
SMALL_COLUMNS = ("age", "sex", "race", "income-per-year")


def adult_sample(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of the UCI Adult example, read as text (as a steward's CSV would be)."""
    df = pd.read_csv(ADULT_DIR / "adult.csv", dtype=str, keep_default_na=False)
    return df.sample(n, random_state=seed).reset_index(drop=True)


def schema_dict(columns: tuple[str, ...] | None = None, *, identifier: bool = True) -> dict[str, Any]:
    """The Adult example schema (optionally a subset) plus an identifier column ``ssn``."""
    data = yaml.safe_load((ADULT_DIR / "schema.yaml").read_text(encoding="utf-8"))
    if columns is not None:
        data["columns"] = [c for c in data["columns"] if c["name"] in columns]
        data["constraints"] = [k for k in data.get("constraints", []) if set(k) <= set(columns)]
    if identifier:
        data["columns"].insert(0, {"name": "ssn", "kind": "identifier"})
    return data


def write_inputs(tmp: Path, n: int, columns: tuple[str, ...] | None = None, *, canary: bool = True,
                 seed: int = 0) -> tuple[Path, Path]:
    """Write a data CSV (with canaries and a unique identifier per row) and its schema."""
    df = adult_sample(n, seed)
    if columns is not None:
        df = df[list(columns)]
    df.insert(0, "ssn", [f"ID-{seed}-{i:07d}-PRIVATE" for i in range(len(df))])
    if canary:
        if "occupation" in df.columns:
            df.loc[0, "occupation"] = CANARY_TEXT
        df.loc[1, "race"] = CANARY_TEXT
        if "capital-gain" in df.columns:
            df.loc[2, "capital-gain"] = CANARY_NUMBER
        df.loc[3, "age"] = CANARY_NUMBER
    data = tmp / "data.csv"
    df.to_csv(data, index=False)
    schema = tmp / "schema.yaml"
    schema.write_text(yaml.safe_dump(schema_dict(columns)), encoding="utf-8")
    return data, schema


def run_cli(args: list[str], capsys: Any) -> tuple[int, str, str]:
    """Run ``dpsynth ARGS`` in process through the real entry point; (code, stdout, stderr)."""
    from dpsynth.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
