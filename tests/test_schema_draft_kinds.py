"""``schema draft`` detects the kinds a person would accept, on CSV text and on typed frames.

The four fixtures are small synthetic lookalikes of public tables (Minneapolis police stops,
Seattle pet licences, New York hourly weather, Toronto arrests): same column names and value
shapes, invented values. They are written to CSV and drafted through the CLI, so the text
path (``str`` columns under pandas 3) is what is tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dpsynth.cli import main
from dpsynth.tabular.encoding import encode_column
from dpsynth.tabular.schema import Schema, Source, dump_schema, load_schema
from dpsynth.tabular.schema_io import draft_schema

N = 400
NEIGHBOURHOODS = [f"{w} Park" for w in ("Cedar", "Elm", "Lake", "Hill", "Marcy", "Field", "Loring", "Como")]


def _pick(rng: np.random.Generator, values: list[Any], n: int = N, null: float = 0.0) -> list[Any]:
    out: list[Any] = [values[i] for i in rng.integers(0, len(values), n)]
    return [None if rng.random() < null else v for v in out]


def _stamps(rng: np.random.Generator, start: str, days: int, unit: str) -> pd.DatetimeIndex:
    step = {"s": 86_400, "h": 24}[unit]
    return pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * step, N), unit=unit)


def minneapolis(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "idNum": [f"17-{i:06d}" for i in rng.permutation(N)],
        "date": _stamps(rng, "2017-01-01", 360, "s").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "problem": _pick(rng, ["suspicious", "traffic"]),
        "MDC": _pick(rng, ["MDC", "other"]),
        "citationIssued": _pick(rng, ["YES", "NO"], null=0.3),
        "personSearch": _pick(rng, ["YES", "NO"]),
        "vehicleSearch": _pick(rng, ["YES", "NO"]),
        "preRace": _pick(rng, ["White", "Black", "Unknown", "East African"], null=0.1),
        "race": _pick(rng, ["White", "Black", "Unknown", "Asian"], null=0.1),
        "gender": _pick(rng, ["Male", "Female", "Unknown"], null=0.1),
        "lat": [f"{v:.5f}" for v in rng.uniform(44.89, 45.05, N)],
        "long": [f"{v:.8f}" for v in rng.uniform(-93.33, -93.19, N)],
        "policePrecinct": _pick(rng, [1, 2, 3, 4, 5]),
        "neighborhood": _pick(rng, NEIGHBOURHOODS),
        "callDisposition": _pick(rng, ["BKG-Booking", "TAG-Tagged", "ADV-Advised", "GOA-Gone on Arrival"]),
    })


def seattle(rng: np.random.Generator) -> pd.DataFrame:
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 1000, N), unit="D")
    iso = rng.random(N) < 0.7
    zips = _pick(rng, ["98103", "98115", "98117", "98125", "02134", "00501"])
    zips = [f"{z}-{rng.integers(1000, 9999)}" if rng.random() < 0.03 else z for z in zips]
    return pd.DataFrame(
        {
            "license_issue_date": [
                d.strftime("%Y-%m-%d") if i else f"{d:%B} {d.day} {d.year}" for d, i in zip(days, iso, strict=True)
            ],
            "license_number": [f"S{v:06d}" for v in rng.choice(900_000, N, replace=False)],
            "animal_s_name": [
                f"Pet{i}{c}" for i, c in zip(rng.permutation(N), _pick(rng, list("abcdefgh")), strict=True)
            ],
            "species": _pick(rng, ["Dog", "Cat", "Goat"]),
            "primary_breed": _pick(rng, ["Retriever, Labrador", "Domestic Shorthair", "Terrier", "Poodle"]),
            "secondary_breed": _pick(rng, ["Mix", "Terrier"], null=0.6),
            "zip_code": zips,
        }
    )


def weather(rng: np.random.Generator) -> pd.DataFrame:
    t = _stamps(rng, "2013-01-01", 364, "h")
    wind_dir = [None if rng.random() < 0.05 else str(10 * v) for v in rng.integers(0, 37, N)]
    return pd.DataFrame({
        "origin": _pick(rng, ["EWR", "JFK", "LGA"]),
        "year": t.year, "month": t.month, "day": t.day, "hour": t.hour,
        "temp": np.round(rng.uniform(10.94, 100.04, N), 2),
        "dewp": np.round(rng.uniform(-9.94, 78.08, N), 2),
        "humid": np.round(rng.uniform(12.74, 100.0, N), 2),
        "wind_dir": wind_dir,
        "wind_speed": np.round(rng.uniform(0, 42.6, N), 5),
        "precip": np.where(rng.random(N) < 0.9, 0.0, np.round(rng.uniform(0.01, 1.21, N), 2)),
        "pressure": [None if rng.random() < 0.1 else f"{v:.1f}" for v in rng.uniform(983.8, 1042.1, N)],
        "visib": np.where(rng.random(N) < 0.8, 10.0, np.round(rng.uniform(0, 10, N), 2)),
        "time_hour": t.strftime("%Y-%m-%dT%H:00:00Z"),
    })


def toronto(rng: np.random.Generator) -> pd.DataFrame:
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
    ages = ["Aged 17 years and under", "Aged 18 to 24 years", "Aged 25 to 34 years", "Aged 35 to 44 years",
            "Aged 45 to 54 years", "Aged 55 to 64 years", "Aged 65 and older"]
    return pd.DataFrame({
        "Arrest_Year": _pick(rng, [2020, 2021]),
        "Arrest_Month": _pick(rng, months[1:]),  # January never occurs: the calendar still lists it
        "EventID": rng.choice(10_000_000, N, replace=False) + 1_000_000,
        "ArrestID": [f"{v}" for v in rng.choice(7_000_000, N, replace=False) + 6_000_000],
        "Perceived_Race": _pick(rng, ["White", "Black", "East/Southeast Asian", "Unknown or Legacy"]),
        "Sex": _pick(rng, ["M", "F", "U"]),
        "Age_group__at_arrest_": _pick(rng, ages),
        "Youth_at_arrest__under_18_years": _pick(rng, ["Not a youth", "Youth (aged 17 years and under)"]),
        "ArrestLocDiv": _pick(rng, ["11", "14", "22", "51", "52", "XX"]),
        "StripSearch": _pick(rng, [0, 1]),
        "Booked": _pick(rng, ["Yes", "No"]),
        "Occurrence_Category": _pick(rng, ["Assault", "Theft", "FTA/FTC/Compliance Check", "Robbery/Theft"]),
    })


def _draft_via_cli(tmp_path: Path, df: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> tuple[Schema, str, str]:
    data, out = tmp_path / "data.csv", tmp_path / "draft.yaml"
    df.to_csv(data, index=False)
    assert main(["schema", "draft", str(data), "-o", str(out)]) == 0
    _, err = capsys.readouterr()
    text = out.read_text(encoding="utf-8")
    return load_schema(out), text, err


def _kinds(schema: Schema) -> dict[str, str]:
    return {c.name: c.kind for c in schema.columns}


def _common_checks(schema: Schema, df: pd.DataFrame, err: str, secrets: list[str]) -> None:
    assert all(Source.private_inferred in c.fact_sources() for c in schema.columns)
    assert all(c.nullable for c in schema.modelled)
    for secret in secrets:  # notes on stderr never hold a value
        assert secret not in err, secret
    for c in schema.modelled:  # what was drafted reads the same text back without complaint
        _, problems = encode_column(df[c.name].astype("string").where(df[c.name].notna()), c)
        assert "unparseable" not in problems, c.name


def test_minneapolis_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = minneapolis(np.random.default_rng(1))
    schema, _, err = _draft_via_cli(tmp_path, df, capsys)
    kinds = _kinds(schema)
    assert kinds == {
        "idNum": "identifier", "date": "datetime", "problem": "categorical", "MDC": "categorical",
        "citationIssued": "boolean", "personSearch": "boolean", "vehicleSearch": "boolean",
        "preRace": "categorical", "race": "categorical", "gender": "categorical", "lat": "numeric",
        "long": "numeric", "policePrecinct": "categorical", "neighborhood": "categorical",
        "callDisposition": "categorical"}
    date = schema.column("date")
    assert date.granularity == "second" and date.bounds == ("2017-01-01T00:00:00+00:00", "2018-01-01T00:00:00+00:00")
    for name in ("lat", "long"):
        assert schema.column(name).dtype == "float" and schema.column(name).bins == 32
    assert schema.column("long").bounds == (-100.0, -90.0) and schema.column("lat").bounds == (40.0, 50.0)
    assert schema.column("policePrecinct").categories == [1, 2, 3, 4, 5]
    assert schema.column("gender").categories == ["Female", "Male", "Unknown"]
    _common_checks(schema, df, err, [df["lat"][0], df["long"][0], df["date"][0], "Cedar"])


def test_seattle_pets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = seattle(np.random.default_rng(2))
    schema, text, err = _draft_via_cli(tmp_path, df, capsys)
    assert _kinds(schema) == {
        "license_issue_date": "datetime", "license_number": "identifier", "animal_s_name": "identifier",
        "species": "categorical", "primary_breed": "categorical", "secondary_breed": "categorical",
        "zip_code": "categorical"}
    assert schema.column("license_issue_date").granularity == "day"
    assert schema.column("license_issue_date").bounds == ("2015-01-01T00:00:00", "2018-01-01T00:00:00")
    zips = schema.column("zip_code")
    assert zips.categories == ["00501", "02134", "98103", "98115", "98117", "98125"] and zips.other
    assert "'00501'" in text  # quoted: stays text, leading zeros kept
    assert not any("-" in str(c) for c in zips.categories)  # the rare ZIP+4 codes went to (other)
    _common_checks(schema, df, err, [df["animal_s_name"][0], df["license_number"][0], "98103"])


def test_new_york_weather(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = weather(np.random.default_rng(3))
    schema, text, err = _draft_via_cli(tmp_path, df, capsys)
    assert _kinds(schema) == {
        "origin": "categorical", "year": "categorical", "month": "ordinal", "day": "numeric", "hour": "numeric",
        "temp": "numeric", "dewp": "numeric", "humid": "numeric", "wind_dir": "numeric", "wind_speed": "numeric",
        "precip": "numeric", "pressure": "numeric", "visib": "numeric", "time_hour": "datetime"}
    th = schema.column("time_hour")
    assert th.granularity == "hour" and th.bounds == ("2013-01-01T00:00:00+00:00", "2014-01-01T00:00:00+00:00")
    assert schema.column("month").categories == list(range(1, 13))
    for name in ("temp", "dewp", "humid", "precip", "visib", "wind_speed", "pressure"):
        assert schema.column(name).dtype == "float", name
    assert schema.column("hour").per_integer and schema.column("hour").bounds == (0, 30)
    assert schema.column("day").per_integer and schema.column("wind_dir").dtype == "int"
    assert schema.column("temp").bounds == (10.0, 100.0)
    _common_checks(schema, df, err, [str(df["temp"][0]), df["time_hour"][0]])
    print(text)  # shown with -s: the drafted YAML quoted in the report


def test_toronto_arrests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = toronto(np.random.default_rng(4))
    schema, _, err = _draft_via_cli(tmp_path, df, capsys)
    assert _kinds(schema) == {
        "Arrest_Year": "categorical", "Arrest_Month": "ordinal", "EventID": "identifier", "ArrestID": "identifier",
        "Perceived_Race": "categorical", "Sex": "categorical", "Age_group__at_arrest_": "categorical",
        "Youth_at_arrest__under_18_years": "categorical", "ArrestLocDiv": "categorical", "StripSearch": "boolean",
        "Booked": "boolean", "Occurrence_Category": "categorical"}
    month = schema.column("Arrest_Month")
    assert month.categories[:3] == ["January", "February", "March"] and month.categories[-1] == "December"
    assert len(month.categories) == 12 and not month.other
    ages = schema.column("Age_group__at_arrest_").categories
    assert ages[0] == "Aged 17 years and under" and ages[-1] == "Aged 65 and older"
    assert schema.column("ArrestLocDiv").categories == ["11", "14", "22", "51", "52", "XX"]
    assert schema.column("Arrest_Year").categories == [2020, 2021]
    _common_checks(schema, df, err, [str(df["EventID"][0]), df["ArrestID"][0]])


@pytest.mark.parametrize("values", [
    ["2018-02-09", "2015-10-11"], ["02/09/2018", "10/11/2015"], ["Feb 9 2018", "Oct 11 2015"],
    ["February 9 2018", "October 11 2015"]])
def test_day_dates_in_common_formats(values: list[str]) -> None:
    df = pd.DataFrame({"d": pd.Series(values * 50, dtype="str")})
    col = draft_schema(df)[0].column("d")
    assert col.kind == "datetime" and col.granularity == "day"
    assert col.bounds == ("2015-01-01T00:00:00", "2019-01-01T00:00:00")


@pytest.mark.parametrize(("values", "granularity"), [
    (["2017-10-11T22:41:40Z", "2018-02-09T03:04:05Z"], "second"),
    (["2017-10-11T22:41:40+02:00", "2018-02-09T03:04:05-05:00"], "second"),
    (["2018/02/09 13:45", "2018/03/09 08:15"], "minute"),
    (["2013-01-01 05:00:00", "2013-06-01 17:00:00"], "hour"),
    (["2013-01-01 00:00:00", "2013-06-01 00:00:00"], "day")])
def test_datetime_granularity(values: list[str], granularity: str) -> None:
    df = pd.DataFrame({"t": pd.Series(values * 30, dtype="str")})
    col = draft_schema(df)[0].column("t")
    assert col.kind == "datetime" and col.granularity == granularity


def test_one_record_does_not_make_the_granularity_finer() -> None:
    values = [f"2013-01-{d:02d}" for d in range(1, 29)] * 10
    values[5] = "2013-01-06 13:45:12"
    assert draft_schema(pd.DataFrame({"t": values}))[0].column("t").granularity == "day"


def test_typed_frames_get_the_same_kinds() -> None:
    rng = np.random.default_rng(5)
    df = weather(rng).assign(time_hour=lambda d: pd.to_datetime(d["time_hour"]),
                             wind_dir=lambda d: pd.to_numeric(d["wind_dir"]))
    df["flag"] = rng.random(N) < 0.5
    kinds = _kinds(draft_schema(df)[0])
    assert kinds["time_hour"] == "datetime" and kinds["month"] == "ordinal" and kinds["flag"] == "boolean"
    assert kinds["temp"] == "numeric" and kinds["wind_dir"] == "numeric"
    assert draft_schema(df)[0].column("time_hour").granularity == "hour"


def test_decimals_and_coordinates_are_not_phone_numbers_but_phones_are() -> None:
    rng = np.random.default_rng(6)
    df = pd.DataFrame({
        "x": [f"{v:.5f}" for v in rng.uniform(10, 11, 200)],
        "y": [f"{v:.8f}" for v in rng.uniform(-94, -93, 200)],
        "contact": [f"({rng.integers(200, 999)}) 555-{rng.integers(1000, 9999)}" for _ in range(200)],
        "mobile": [f"+44 7700 {rng.integers(100000, 999999)}" for _ in range(200)],
        "k": ["a", "b"] * 100,
    })
    kinds = _kinds(draft_schema(df)[0])
    assert kinds == {"x": "numeric", "y": "numeric", "contact": "identifier", "mobile": "identifier",
                     "k": "categorical"}


@pytest.mark.parametrize(("values", "true_false"), [
    (["YES", "NO"], True), (["Y", "N"], True), (["0", "1"], True), (["true", "false"], True), (["T", "F"], True),
    (["Yes"], True), (["1"], False), (["F"], False), (["M", "F"], False)])
def test_boolean_spellings(values: list[str], true_false: bool) -> None:
    col = draft_schema(pd.DataFrame({"b": values * 40}))[0].column("b")
    assert (col.kind == "boolean") is true_false
    if true_false:
        codes, problems = encode_column(pd.Series(values * 2, dtype="str"), col)
        assert problems == {} and set(codes) <= {0, 1}


@pytest.mark.parametrize(("name", "values", "want"), [
    ("month", [str(m) for m in range(1, 13)], list(range(1, 13))),
    ("visit_month", [f"{m:02d}" for m in range(1, 13)], [f"{m:02d}" for m in range(1, 13)]),
    ("m", ["Jan", "Feb", "Mar", "Sept", "Dec"],
     ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"]),
    ("mon", ["JANUARY", "MAY", "DECEMBER"],
     ["JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER",
      "NOVEMBER", "DECEMBER"]),
    ("d", ["Sunday", "Monday", "Friday"], ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                          "Sunday"]),
    ("weekday", ["1", "3", "7"], [1, 2, 3, 4, 5, 6, 7]),
])
def test_calendar_columns_are_ordinal_in_calendar_order(name: str, values: list[str], want: list[Any]) -> None:
    col = draft_schema(pd.DataFrame({name: values * 40}))[0].column(name)
    assert col.kind == "ordinal" and col.categories == want and not col.other


def test_small_number_sets_sort_naturally_and_months_in_other_columns_do_not_become_ordinal() -> None:
    df = pd.DataFrame({"checks": [str(v) for v in [0, 1, 2, 10, 11, 3] * 40], "months_employed": ["1", "12"] * 120})
    schema = draft_schema(df)[0]
    assert schema.column("checks").categories == [0, 1, 2, 3, 10, 11]
    assert schema.column("months_employed").kind == "categorical"


@pytest.mark.parametrize(("fmt", "values", "want"), [
    ("{:g} kg", ["12 kg", "3.5 kg", "45 kg", "7kg"], [12.0, 3.5, 45.0, 7.0]),
    ("{:g}km", ["3.5km", "10km", "0.25km", "7 km"], [3.5, 10.0, 0.25, 7.0]),
    ("{:g}%", ["45%", "3%", "99.5%", "0%"], [45.0, 3.0, 99.5, 0.0]),
    ("${:,.0f}", ["$1,200", "$35", "$1,000,000", "$7.50"], [1200.0, 35.0, 1e6, 7.5]),
    ("{:,.0f}", ["1,200", "35", "12,345", "7"], [1200.0, 35.0, 12345.0, 7.0]),
])
def test_numbers_with_a_consistent_unit_are_numeric_and_encode(fmt: str, values: list[str], want: list[float]) -> None:
    filler = [fmt.format(v) for v in np.random.default_rng(7).integers(1, 99, 200)]
    col = draft_schema(pd.DataFrame({"v": pd.Series(values + filler, dtype="str")}))[0].column("v")
    assert col.kind == "numeric"
    codes, problems = encode_column(pd.Series(values, dtype="str"), col)
    assert "unparseable" not in problems and "out_of_bounds" not in problems
    edges = col.bin_edges()
    for code, v in zip(codes, want, strict=True):
        assert edges[code] <= v <= edges[code + 1]


def test_mixed_units_are_not_numeric() -> None:
    values = [f"{i} kg" for i in range(30)] + [f"{i} lb" for i in range(30)]
    assert draft_schema(pd.DataFrame({"w": values * 2, "k": ["a", "b"] * 60}))[0].column("w").kind != "numeric"


def test_codes_with_leading_zeros_stay_text() -> None:
    codes = [f"{i:05d}" for i in range(1, 31)]
    col = draft_schema(pd.DataFrame({"fips": pd.Series(codes * 10, dtype="str")}))[0].column("fips")
    assert col.kind == "categorical" and col.categories == codes
    assert "'00001'" in dump_schema(draft_schema(pd.DataFrame({"fips": codes * 10}))[0])
    unique = draft_schema(pd.DataFrame({"postal": [f"{i:05d}" for i in range(300)], "k": ["a", "b"] * 150}))[0]
    unique = unique.column("postal")
    assert unique.kind == "identifier"


def test_draft_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data.csv", tmp_path / "draft.yaml"
    toronto(np.random.default_rng(8)).to_csv(data, index=False)
    out.write_text("keep me\n", encoding="utf-8")
    assert main(["schema", "draft", str(data), "-o", str(out)]) == 2
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dpsynth: error:") and "--overwrite" in lines[0]
    assert "Traceback" not in err and out.read_text(encoding="utf-8") == "keep me\n"
    assert main(["schema", "draft", str(data), "-o", str(out), "--overwrite"]) == 0
    assert load_schema(out).column("Booked").kind == "boolean"
