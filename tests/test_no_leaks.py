"""No private cell value ever reaches an exception, a warning, a log line or a model file.

A canary string and a canary number are planted in the data; every path that can complain
about the data is driven; everything captured is scanned.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.errors import DPSynthError
from dpsynth.tabular.encoding import encode, read_frame, validate_frame
from dpsynth.tabular.schema import load_schema, parse_schema
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

SCHEMA = load_schema(ADULT_SCHEMA)
CANARY_TEXT = "CANARY-Zq8v1"
CANARY_NUM = "987654.321"


def planted() -> pd.DataFrame:
    df = read_frame(ADULT_SAMPLE, SCHEMA).head(600).copy()
    df.loc[3, "workclass"] = CANARY_TEXT
    df.loc[4, "native-country"] = CANARY_TEXT
    df.loc[5, "age"] = CANARY_NUM
    df.loc[6, "capital-gain"] = CANARY_NUM
    df.loc[7, "hours-per-week"] = CANARY_TEXT  # unparseable number
    df.loc[8, "sex"] = None  # null in a non-nullable column
    df["unexpected column"] = CANARY_TEXT  # not in the schema
    return df


def scan(text: str) -> None:
    assert CANARY_TEXT not in text
    assert CANARY_NUM not in text and "987654" not in text


def test_value_anomalies_never_raise_and_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    df = planted()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate_frame(df, SCHEMA)
        table = encode(df, SCHEMA)
        synth = api.fit(df, SCHEMA, mechanism="mst", epsilon=1.0, delta=1e-9)
        out = synth.sample(2000, seed=0)
        synth.save(tmp_path / "model")
    assert table.codes.shape == (600, 15)
    assert report.problems["workclass"]["undeclared_category"] == 1
    text = caplog.text + capsys.readouterr().err + "".join(str(w.message) for w in caught)
    text += repr(report.to_json()) + out.to_csv()
    for f in (tmp_path / "model").rglob("*"):
        if f.is_file():
            text += f.read_bytes().decode("latin-1")
    scan(text)
    assert "unexpected column" in caplog.text  # the column name is public, its values are not


@pytest.mark.parametrize(
    "mutate",
    [
        lambda df: df.drop(columns=["age"]),  # missing column
        lambda df: df.rename(columns={"sex": "race"}),  # duplicate column names
    ],
)
def test_schema_errors_name_columns_not_values(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DPSynthError) as info:
        encode(mutate(planted()), SCHEMA)
    scan(str(info.value))


def test_condition_errors_do_not_echo_private_data() -> None:
    synth = api.fit(planted(), SCHEMA, mechanism="independent", epsilon=1.0, delta=1e-9)
    with pytest.raises(DPSynthError) as info:
        synth.sample(10, conditions={"sex": "Unknown"})
    scan(str(info.value))


def test_identifier_values_never_reach_the_output() -> None:
    s = parse_schema({"columns": [
        {"name": "ssn", "kind": "identifier", "output": "token"},
        {"name": "g", "kind": "categorical", "categories": ["a", "b"]}]})
    df = pd.DataFrame({"ssn": [f"{CANARY_TEXT}-{i}" for i in range(300)], "g": ["a", "b"] * 150})
    synth = api.fit(df, s, mechanism="independent", epsilon=1.0, delta=1e-9)
    out = synth.sample(300, seed=0)
    scan(out.to_csv())
    assert out["ssn"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert np.isin(out["g"], ["a", "b"]).all()
