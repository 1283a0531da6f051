"""A tiny run of the calibration campaign: one table, one seed, an honest release and the leaky copies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audits import CAMPAIGNS
from audits.campaigns import calibration


def test_registered_outside_the_fast_subset() -> None:
    camp = CAMPAIGNS["calibration"]
    assert camp.run is calibration.run and camp.in_fast is False


def test_tiny_campaign_passes_mst_and_fails_every_leaky_copy() -> None:
    results = calibration.run(fast=True, rng=np.random.default_rng(0), n_train=600, n_attacks=150,
                              candidates=("mst_eps1", "exact_copy", "perturbed_30", "jitter"))
    by = {r.variant: r for r in results}
    assert by["mst_eps1"].expect == "pass" and by["mst_eps1"].trials == 1
    for leaky in ("exact_copy", "perturbed_30", "jitter"):
        assert by[leaky].expect == "caught"
        assert by[leaky].verdict == "CAUGHT", by[leaky].details["runs"]
        assert by[leaky].lower_bound == 0.0  # the observed pass rate
    run = by["mst_eps1"].details["runs"]["adult"][0]
    assert set(run) >= {"passed", "failures", "auc_upper", "inference_upper"}
    assert by["mst_eps1"].ok == run["passed"]


def test_leaky_copies_are_what_they_claim() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"n": rng.integers(0, 100, 2000).astype(float), "c": rng.choice(list("abc"), 2000)})
    pert = calibration.perturbed_copy(train, rng)
    changed = (pert != train).any(axis=1).mean()
    assert 0.2 < changed < 0.5  # 30% of cells resampled, some to the same value
    jit = calibration.jitter_copy(train, rng)
    assert (jit["c"] == train["c"]).all()
    assert 0 < (jit["n"] - train["n"]).abs().mean() < 5


def test_absent_table_is_skipped_and_said(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ghost = dataclasses.replace(calibration.TABLES[1], csv=tmp_path / "absent.csv")
    monkeypatch.setattr(calibration, "TABLES", (ghost,))
    (res,) = calibration.run(fast=False, rng=np.random.default_rng(0), seeds=1,
                             tables=(ghost.name,), candidates=("exact_copy",))
    assert res.trials == 0 and res.ok is False
    assert res.details["skipped_tables"] and "absent" in res.details["skipped_tables"][0]


def test_journal_records_each_audit_and_a_rerun_reuses_it(tmp_path: Path) -> None:
    journal = tmp_path / "calibration.jsonl"
    kw = dict(fast=True, rng=np.random.default_rng(0), n_train=400, n_attacks=100, seeds=2,
              seed_base=77, candidates=("exact_copy",), journal=journal)
    (first,) = calibration.run(**kw)  # type: ignore[arg-type]
    lines = journal.read_text().splitlines()
    assert len(lines) == 2 and first.trials == 2 and first.verdict == "CAUGHT"
    (again,) = calibration.run(**kw)  # type: ignore[arg-type]
    assert journal.read_text().splitlines() == lines  # nothing re-audited
    assert again.details["runs"] == first.details["runs"] and again.seconds == 0.0
    table = calibration.summarise(journal)
    assert "| exact_copy | 0/2 | 0/2 |" in table and table.splitlines()[0].startswith("| candidate | adult |")
