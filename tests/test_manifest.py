"""Manifest helpers: checksums format, ledger recomputation, privacy statement."""

from __future__ import annotations

import math

import pytest

from dpsynth.bundle.manifest import REQUIRED_FILES, format_sha256sums, parse_sha256sums
from dpsynth.bundle.statement import plain_epsilon
from dpsynth.bundle.verify import ledger_epsilon, ledger_rho
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ApproxDP
from dpsynth.privacy.events import GaussianEvent


def test_sha256sums_round_trip_and_malformed_lines() -> None:
    entries = {"b.csv": "a" * 64, "report/x.json": "0123456789abcdef" * 4}
    text = format_sha256sums(entries)
    assert text.splitlines()[0] == "a" * 64 + "  b.csv"  # sha256sum -c format, sorted
    parsed, bad = parse_sha256sums(text + "nonsense\n" + "zz  file\n")
    assert parsed == entries and bad == ["line 3", "line 4"]


def test_ledger_epsilon_matches_the_accountant() -> None:
    acc = Accountant(ApproxDP(2.0, 1e-6))
    for sigma in (5.0, 7.5, 12.0):
        acc.charge(GaussianEvent(sigma=sigma, label=f"m{sigma}"))
    ledger = acc.spend(1e-6).to_json()["ledger"]
    assert ledger_rho(ledger) == pytest.approx(math.fsum(1 / (2 * s * s) for s in (5.0, 7.5, 12.0)))
    assert ledger_epsilon(ledger, 1e-6) == pytest.approx(acc.epsilon(1e-6), rel=1e-12)
    assert ledger_epsilon([], 1e-6) == 0.0


def test_required_files_follow_the_cli_contract() -> None:
    assert set(REQUIRED_FILES) == {"synthetic.csv", "synthetic.parquet", "schema.yaml", "manifest.json",
                                   "privacy_statement.md", "report/index.html", "report/report.json",
                                   "SHA256SUMS"}


def test_plain_epsilon_states_the_odds_bound() -> None:
    assert "2.72" in plain_epsilon(1.0)
    assert "nothing" in plain_epsilon(0.0)
