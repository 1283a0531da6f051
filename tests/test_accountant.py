"""Tests of dpsynth.privacy.accountant and dpsynth.privacy.events: charge-before-measure, exact composition,
RDP accounting of DP-SGD, and the write-ahead persistent ledger (crash and concurrency)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.privacy.accountant import Accountant, LedgerEntry
from dpsynth.privacy.budget import ZCDP, ApproxDP, PureDP, epsilon_to_rho, zcdp_to_epsilon
from dpsynth.privacy.events import (
    GaussianEvent,
    NoisyMaxEvent,
    SubsampledGaussianEvent,
    ZCDPEvent,
    event_from_json,
)
from dpsynth.privacy.noise import gumbel_scale_for_rho
from dpsynth.privacy.rdp import dpsgd_epsilon
from dpsynth.privacy.spend import PrivacySpend
from tests.paths import REPO_ROOT


# ---------------------------------------------------------------------------- events
def test_event_costs_match_opendp() -> None:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    gauss = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=3.0
    )
    assert GaussianEvent(3.0).rho == pytest.approx(gauss.map(1))
    assert GaussianEvent(3.0, sensitivity=2.0).rho == pytest.approx(gauss.map(2))
    noisy_max = dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)),
        dp.linf_distance(T=float, monotonic=False),
        dp.zero_concentrated_divergence(),
        scale=4.0,
    )
    assert NoisyMaxEvent(4.0).rho == pytest.approx(noisy_max.map(1.0))
    assert NoisyMaxEvent(4.0, sensitivity=2.0).rho == pytest.approx(noisy_max.map(2.0))
    # dpsynth.privacy.noise's calibration is the inverse of NoisyMaxEvent's cost
    assert NoisyMaxEvent(gumbel_scale_for_rho(0.01, 1.0)).rho == pytest.approx(0.01)


def test_events_validate_and_round_trip() -> None:
    events = [
        GaussianEvent(2.0, 1.5, "one-way"),
        NoisyMaxEvent(0.5, label="select"),
        ZCDPEvent(0.01, "generic"),
        SubsampledGaussianEvent(1.1, 0.01, 500, "dp-sgd"),
    ]
    for ev in events:
        back = event_from_json(json.loads(json.dumps(ev.to_json())))
        assert back == ev
    assert math.isinf(events[3].rho)
    assert SubsampledGaussianEvent(2.0, 1.0, 8).rho == pytest.approx(1.0)  # q = 1: Gaussian
    with pytest.raises(ConfigError, match=r"sigma \(-1\.0\) must be > 0"):
        GaussianEvent(-1.0)
    with pytest.raises(ConfigError, match="sample_rate"):
        SubsampledGaussianEvent(1.0, 0.0, 10)
    with pytest.raises(ConfigError, match="steps"):
        SubsampledGaussianEvent(1.0, 0.1, 0)
    with pytest.raises(ConfigError, match="event type"):
        event_from_json({"type": "LaplaceEvent"})
    with pytest.raises(ConfigError, match="missing field 'sigma'"):
        event_from_json({"type": "GaussianEvent"})


# --------------------------------------------------------------- charge before measure
class Measurer:
    """Stands in for a mechanism: charges, then measures (and records that it measured)."""

    def __init__(self, acc: Accountant) -> None:
        self.acc = acc
        self.measured: list[str] = []

    def measure(self, event: Any) -> None:
        self.acc.charge(event)
        self.measured.append(event.label)


def test_overspend_is_refused_before_measuring_and_ledger_unchanged() -> None:
    acc = Accountant(ZCDP(0.1))
    m = Measurer(acc)
    m.measure(ZCDPEvent(0.05, "a"))
    before = (acc.ledger, acc.spent_rho, acc.remaining_rho)
    with pytest.raises(BudgetExceededError) as info:
        m.measure(ZCDPEvent(0.08, "big"))
    assert str(info.value).startswith("requested rho=0.08, remaining rho=0.05 (label 'big')")
    assert m.measured == ["a"]  # the refused measurement never ran
    assert (acc.ledger, acc.spent_rho, acc.remaining_rho) == before
    assert not acc.can_afford(ZCDPEvent(0.08))
    assert acc.can_afford(ZCDPEvent(0.05))


def test_budget_split_into_parts_can_be_spent_exactly() -> None:
    for total, n in [(1.0, 3), (0.1, 7), (0.3, 10), (2.0 / 3.0, 49)]:
        acc = Accountant(ZCDP(total))
        for k in range(n):
            acc.charge(ZCDPEvent(total / n, f"part {k}"))
        assert acc.remaining_rho == pytest.approx(0.0, abs=1e-12)
        with pytest.raises(BudgetExceededError):
            acc.charge(ZCDPEvent(total * 1e-9))
    acc = Accountant(ApproxDP(1.0, 1e-6))
    for rho in acc.remaining_split([1, 2, 3.5]):
        acc.charge(ZCDPEvent(rho))
    assert acc.epsilon() <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-6, 0.4), min_size=1, max_size=40), st.floats(0.05, 2.0))
def test_never_overspends_in_exact_arithmetic(rhos: list[float], total: float) -> None:
    acc = Accountant(ZCDP(total))
    for rho in rhos:
        ev = ZCDPEvent(rho)
        affordable = acc.can_afford(ev)
        try:
            acc.charge(ev)
        except BudgetExceededError:
            assert not affordable
        else:
            assert affordable
    spent = sum((Fraction(e.rho) for e in acc.ledger), Fraction(0))
    assert spent <= Fraction(total) * (1 + Fraction(1, 10**12))
    assert [e.index for e in acc.ledger] == list(range(len(acc.ledger)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.5, 50.0), min_size=1, max_size=20),
    st.floats(0.1, 5.0),
    st.floats(-10, -3),
)
def test_approx_budget_epsilon_is_never_exceeded(
    sigmas: list[float], eps: float, log10_delta: float
) -> None:
    budget = ApproxDP(eps, 10**log10_delta)
    acc = Accountant(budget)
    for s in sigmas:
        if acc.can_afford(GaussianEvent(s)):
            acc.charge(GaussianEvent(s))
    assert acc.epsilon() <= eps * (1 + 1e-12)
    assert acc.total_rho == epsilon_to_rho(eps, budget.delta)


def test_pure_budget_is_accounted_as_rho() -> None:
    acc = Accountant(PureDP(1.0))
    assert acc.total_rho == 0.5
    acc.charge(GaussianEvent(1.0))  # rho = 0.5
    with pytest.raises(BudgetExceededError):
        acc.charge(GaussianEvent(1000.0))
    with pytest.raises(ConfigError, match="delta is required"):
        acc.epsilon()
    assert acc.epsilon(1e-5) == pytest.approx(zcdp_to_epsilon(0.5, 1e-5))


def test_ledger_entries_are_frozen_and_timestamped() -> None:
    acc = Accountant(ZCDP(1.0))
    acc.charge(GaussianEvent(5.0, label="x"))
    (entry,) = acc.ledger
    assert isinstance(entry, LedgerEntry)
    assert entry.index == 0 and entry.rho == pytest.approx(0.02) and entry.event.label == "x"
    assert entry.time.tzinfo is UTC
    with pytest.raises(AttributeError):
        entry.rho = 0.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"must be a dpsynth\.privacy\.events event"):
        acc.charge(0.1)  # type: ignore[arg-type]


def test_statement_and_json_round_trip() -> None:
    acc = Accountant(ApproxDP(2.0, 1e-6))
    acc.charge(GaussianEvent(10.0, label="1-way"))
    acc.charge(NoisyMaxEvent(8.0, label="select"))
    spend = acc.spend()
    assert spend.delta == 1e-6
    assert spend.rho == pytest.approx(1 / 200 + 1 / 128)
    assert spend.epsilon == pytest.approx(zcdp_to_epsilon(1 / 200 + 1 / 128, 1e-6))
    assert spend.conversion is not None and "Canonne" in spend.conversion
    assert [e.label for e in spend.ledger] == ["1-way", "select"]
    assert spend.budget == ApproxDP(2.0, 1e-6)
    as_json = json.loads(json.dumps(spend.to_json()))  # JSON-ready, and no charge time is published
    assert all("time" not in e for e in as_json["ledger"])
    assert PrivacySpend.from_json(as_json) == spend
    back = Accountant.from_json(json.loads(json.dumps(acc.to_json())))
    assert back.ledger == acc.ledger
    assert back.spent_rho == acc.spent_rho and back.budget == acc.budget


# ------------------------------------------------------------------ DP-SGD in RDP
def test_subsampled_gaussian_is_checked_in_rdp() -> None:
    sgd = SubsampledGaussianEvent(1.5, 0.04, 2250, "dp-sgd")
    refused = Accountant(ApproxDP(7.0, 1e-5))
    with pytest.raises(BudgetExceededError, match=r"epsilon to 7\.329.* over the budget"):
        refused.charge(sgd)
    assert refused.ledger == ()
    acc = Accountant(ApproxDP(8.0, 1e-5))
    acc.charge(sgd)
    assert acc.epsilon() == pytest.approx(7.3291, abs=1e-3)
    assert acc.epsilon() == pytest.approx(dpsgd_epsilon(1.5, 0.04, 2250, 1e-5))
    assert math.isinf(acc.spent_rho)
    room = acc.remaining_rho
    assert room > 0
    with pytest.raises(BudgetExceededError):
        acc.charge(ZCDPEvent(room * 1.01))
    acc.charge(ZCDPEvent(room, "after training"))
    assert acc.epsilon() <= 8.0
    spend = acc.spend()
    assert spend.rho is None and spend.conversion is not None and "Balle" in spend.conversion
    assert spend.ledger[0].rho is None  # the subsampled Gaussian has no finite rho
    assert PrivacySpend.from_json(json.loads(json.dumps(spend.to_json()))) == spend


def test_zcdp_budget_cannot_cover_subsampling() -> None:
    acc = Accountant(ZCDP(10.0))
    with pytest.raises(BudgetExceededError, match="no finite zCDP cost"):
        acc.charge(SubsampledGaussianEvent(1.0, 0.01, 10))
    acc.charge(SubsampledGaussianEvent(10.0, 1.0, 2))  # q = 1 is a plain Gaussian
    assert acc.spent_rho == pytest.approx(0.01)


# ------------------------------------------------------------ the persistent ledger
def test_persistent_ledger_counts_prior_spend(tmp_path: Path) -> None:
    # Changed with reservations (issue 13): a run reserves its whole budget up front, the
    # cap is stored at creation, and a committed run counts what it charged.
    path = tmp_path / "ledger.jsonl"
    first = Accountant(ZCDP(1.0), ledger_path=path)
    first.charge(ZCDPEvent(0.4, "run 1"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["cap", "reserve", "charge"]
    assert records[2]["label"] == "run 1"
    first.commit()
    with pytest.raises(BudgetExceededError, match="under the lifetime cap"):
        Accountant(ZCDP(0.7), ledger_path=path)  # refused at reservation
    second = Accountant(ZCDP(0.6), ledger_path=path)
    assert second.prior_rho == pytest.approx(0.4) and second.spent_rho == 0.0
    assert second.remaining_rho == pytest.approx(0.6)
    second.charge(ZCDPEvent(0.6))
    second.commit()
    # a later run may not bring a larger cap: it was stored when the ledger was created
    with pytest.raises(ConfigError, match="lifetime cap rho=1, stored"):
        Accountant(ZCDP(0.2), ledger_path=path, lifetime=ZCDP(1.2))
    with pytest.raises(BudgetExceededError, match="remaining rho=0 under the lifetime cap"):
        Accountant(ZCDP(1e-9), ledger_path=path)


def _child(script: str, path: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(script).format(path=str(path))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )


CHARGE_THEN_CRASH = """
    import os
    from pathlib import Path
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ZCDP
    from dpsynth.privacy.events import ZCDPEvent
    acc = Accountant(ZCDP(0.7), ledger_path=Path({path!r}), lifetime=ZCDP(1.0))
    acc.charge(ZCDPEvent(0.5, "before crash"))
    os._exit(9)  # no flush, no atexit: only what charge() made durable survives
"""

CHARGE_THEN_HANG = """
    import sys, time
    from pathlib import Path
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ZCDP
    from dpsynth.privacy.events import ZCDPEvent
    acc = Accountant(ZCDP(0.7), ledger_path=Path({path!r}), lifetime=ZCDP(1.0))
    acc.charge(ZCDPEvent(0.5, "before kill"))
    print("charged", flush=True)
    time.sleep(60)
"""


def test_write_ahead_ledger_survives_os_exit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    proc = _child(CHARGE_THEN_CRASH, path)
    assert proc.wait(timeout=60) == 9
    # the crashed run charged 0.5 of its 0.7 reservation; all 0.7 counts as spent
    with pytest.raises(BudgetExceededError, match=r"remaining rho=0\.3 under the lifetime cap"):
        Accountant(ZCDP(0.5), ledger_path=path)
    rerun = Accountant(ZCDP(0.3), ledger_path=path)
    assert rerun.prior_rho == pytest.approx(0.7)
    rerun.charge(ZCDPEvent(0.3))


def test_write_ahead_ledger_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    proc = _child(CHARGE_THEN_HANG, path)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "charged"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    rerun = Accountant(ZCDP(0.3), ledger_path=path)
    assert [e.event.label for e in rerun.prior_ledger] == ["before kill"]
    assert rerun.prior_rho == pytest.approx(0.7)  # the whole reservation of the killed run
    assert not rerun.can_afford(ZCDPEvent(0.31))


def test_concurrent_runs_cannot_jointly_overspend(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    script = """
        from pathlib import Path
        from dpsynth.privacy.accountant import Accountant
        from dpsynth.privacy.budget import ZCDP
        from dpsynth.errors import BudgetExceededError
        from dpsynth.privacy.events import ZCDPEvent
        try:
            acc = Accountant(ZCDP(0.3), ledger_path=Path({path!r}), lifetime=ZCDP(1.0))
            acc.charge(ZCDPEvent(0.3))
            acc.commit()
            print("ok")
        except BudgetExceededError:
            print("refused")
    """
    procs = [_child(script, path) for _ in range(4)]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outcomes == ["ok", "ok", "ok", "refused"]
    assert Accountant(ZCDP(0.1), ledger_path=path).prior_rho == pytest.approx(0.9)


def test_torn_final_line_is_dropped_and_corruption_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first = Accountant(ZCDP(0.2), ledger_path=path, lifetime=ZCDP(1.0))
    first.charge(ZCDPEvent(0.2, "complete"))
    first.commit()
    with path.open("a") as fh:
        fh.write('{"index": 1, "event": {"type": "ZCDPEv')  # a write cut by a crash
    acc = Accountant(ZCDP(0.5), ledger_path=path)
    assert acc.prior_rho == pytest.approx(0.2)
    acc.charge(ZCDPEvent(0.1, "next"))
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["label"] for e in entries if e["type"] == "charge"] == ["complete", "next"]
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(ConfigError, match="line 1 is not a valid ledger entry"):
        Accountant(ZCDP(1.0), ledger_path=path)


def test_ledger_file_is_authoritative_and_may_not_shrink(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    acc = Accountant(ApproxDP(1.0, 1e-6), ledger_path=path)
    acc.charge(GaussianEvent(10.0, label="a"))
    restored = Accountant.from_json(json.loads(json.dumps(acc.to_json())))
    assert restored.ledger == acc.ledger and restored.prior_ledger == ()
    restored.charge(GaussianEvent(10.0, label="b"))  # same session, same file
    assert [e.index for e in restored.ledger] == [0, 1]
    path.unlink()  # someone deletes the ledger mid-run: the run must not forget its spend
    with pytest.raises(ConfigError, match="lost entries of this run"):
        restored.charge(GaussianEvent(10.0, label="c"))
