"""Point masses survive a DP release, and released files look like the input.

On the weather lookalike (precip 0 in ~93% of rows, visib capped at 10 in ~83%) at epsilon 1:
the count of each drafted atom in the synthetic rows is close to its noisy count (sigma is the
noise scale of the one-way measurement; see ``_atom_near_its_noisy_count``), and the shape score computed by
``dpsynth evaluate`` (KSComplement) for precip and visib rises from under 0.2 without atoms
(and without the drafted precision, i.e. the behaviour before atoms existed) to over 0.8.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from lookalikes import pets_like, weather_like

import dpsynth
from dpsynth.api import fit
from dpsynth.evaluation.evaluate import evaluate
from dpsynth.synthesizer import Synthesizer
from dpsynth.tabular.draft import draft_schema
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import Schema, parse_schema

ATOMS = {"precip": 0, "visib": 10}


def _without(schema: Schema, facts: tuple[str, ...]) -> Schema:
    data = schema.to_dict()
    for col in data["columns"]:
        for fact in facts:
            col.pop(fact, None)
            col.get("sources", {}).pop(fact, None)
    return parse_schema(data)


def _shapes(real: pd.DataFrame, syn: pd.DataFrame, schema: Schema, out: Path) -> dict[str, float]:
    ev = evaluate(real, syn, schema, out=out)
    return {name: ev["column_shapes"][name]["score"] for name in ATOMS}


def _atom_near_its_noisy_count(synth: Synthesizer, syn: pd.DataFrame) -> None:
    codes = encode(syn, synth.schema)
    for name, value in ATOMS.items():
        col = synth.schema.column(name)
        assert col.atoms == [value]
        got = int((codes.column_codes((name,))[:, 0] == col.n_bins).sum())
        noisy = [m for m in synth.measurements if m.clique == (name,) and m.values.shape == (col.domain_size(),)]
        assert noisy, name
        m = noisy[0]
        # Rows default to the DP estimate of n, so the atom's count is compared with its noisy
        # count. The difference behaves like N(0, sigma^2) (20 MST fits: sd 1.04 sigma, 95% of
        # atoms within 2 sigma), so one run is checked at 4 sigma (a false alarm ~1e-4).
        assert abs(got - float(m.values[col.n_bins])) <= 4 * m.sigma, (name, got, float(m.values[col.n_bins]), m.sigma)
        assert (syn[name] == value).sum() == got  # decoded to exactly the atom


def _check_spelling(csv_text: str) -> None:
    """Every cell in the source's spelling (a null is an empty cell, as in the source, or NA)."""
    out = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    assert set(out["freezing"]) <= {"YES", "NO", ""}
    assert out["time_hour"].str.fullmatch(r"(201[34]-\d\d-\d\dT\d\d:00:00Z)?").all()
    wind = out["wind_dir"]
    assert (wind[wind != "NA"].astype(int) % 10 == 0).all()
    for name in ("precip", "visib", "temp", "wind_speed"):
        assert out[name].str.fullmatch(r"(\d+(\.\d{1,2})?)?").all(), name
    assert (out != "").to_numpy().mean() > 0.95


def _run(mechanism: str, tmp_path: Path, n: int) -> dict[str, Any]:
    real = weather_like(n)
    drafted, _ = draft_schema(real)
    before = _without(drafted, ("atoms", "decimals", "step"))
    old = fit(real, before, mechanism=mechanism, epsilon=1.0, delta=1e-9, seed=11, allow_private_schema=True)
    new = fit(real, drafted, mechanism=mechanism, epsilon=1.0, delta=1e-9, seed=11, allow_private_schema=True)
    syn = new.sample(seed=11)
    _atom_near_its_noisy_count(new, syn)
    return {"before": _shapes(real, old.sample(seed=11), before, tmp_path / "before"),
            "after": _shapes(real, syn, drafted, tmp_path / "after"), "syn": syn}


def test_mst_keeps_the_point_masses_at_epsilon_one(tmp_path: Path) -> None:
    got = _run("mst", tmp_path, 4000)
    assert max(got["before"].values()) < 0.2, got["before"]
    assert min(got["after"].values()) > 0.8, got["after"]
    buf = io.StringIO()
    got["syn"].to_csv(buf, index=False)
    _check_spelling(buf.getvalue())


@pytest.mark.slow
def test_aim_keeps_the_point_masses_at_epsilon_one(tmp_path: Path) -> None:
    got = _run("aim", tmp_path, 6000)
    assert max(got["before"].values()) < 0.2, got["before"]
    assert min(got["after"].values()) > 0.8, got["after"]


def test_release_bundle_files_use_the_source_spelling(tmp_path: Path) -> None:
    real = weather_like(1500)
    schema, _ = draft_schema(real)
    res = dpsynth.release(real, schema, mechanism="mst", epsilon=1.0, delta=1e-9, seed=3,
                          allow_private_schema=True, out=tmp_path / "bundle")
    _check_spelling((res.bundle / "synthetic.csv").read_text())
    parquet = pd.read_parquet(res.bundle / "synthetic.parquet")
    assert set(parquet["freezing"].dropna()) <= {"YES", "NO"}
    pets = pets_like(1500)
    schema, _ = draft_schema(pets)
    res = dpsynth.release(pets, schema, mechanism="mst", epsilon=1.0, delta=1e-9, seed=3,
                          allow_private_schema=True, out=tmp_path / "pets")
    out = pd.read_csv(res.bundle / "synthetic.csv", dtype=str, keep_default_na=False)
    assert set(out["neutered"]) <= {"Yes", "No", ""} and set(out["microchipped"]) <= {"Yes", "No", ""}
    assert out["license_issue_date"].str.fullmatch(r"(201[5-9]-\d\d-\d\d)?").all()
    assert out["age_years"].str.fullmatch(r"(\d+(\.\d)?)?").all()
