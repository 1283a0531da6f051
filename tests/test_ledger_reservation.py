"""All-or-nothing lifetime ledger (issue 13): reservation before any read, a cap stored at
creation and raised only explicitly, crash and concurrency safety, and ``dpsynth ledger``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from dpsynth.api import fit
from dpsynth.cli import main
from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP
from dpsynth.privacy.events import ZCDPEvent
from dpsynth.privacy.ledger import raise_cap, read_state
from dpsynth.tabular.schema import load_schema
from tests.paths import ADULT_SAMPLE as SAMPLE
from tests.paths import ADULT_SCHEMA as SCHEMA
from tests.paths import REPO_ROOT


def run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def fit_args(ledger: Path, out: Path, *extra: object) -> list[object]:
    return ["fit", SAMPLE, "-s", SCHEMA, "-m", "independent", "--ledger", ledger,
            "--out", out, *extra]


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------ refused: nothing written
def test_refused_cli_run_leaves_the_ledger_byte_identical(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.jsonl"
    code, _, err = run(fit_args(ledger, tmp_path / "a", "--epsilon", "1",
                                "--lifetime-epsilon", "1.2"), capsys)
    assert code == 0, err
    before = ledger.read_bytes()
    code, _, err = run(fit_args(ledger, tmp_path / "b", "--epsilon", "1"), capsys)
    assert code == 3 and "under the lifetime cap" in err and "nothing was measured" in err
    assert ledger.read_bytes() == before
    assert not (tmp_path / "b").exists()
    # a new ledger whose cap cannot cover the run is not even created
    fresh = tmp_path / "fresh.jsonl"
    code, _, err = run(fit_args(fresh, tmp_path / "c", "--epsilon", "1",
                                "--lifetime-epsilon", "0.5"), capsys)
    assert code == 3 and "not created" in err and not fresh.exists()


def test_refused_api_run_leaves_the_ledger_byte_identical(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    df = pd.read_csv(SAMPLE, dtype=str)
    schema = load_schema(SCHEMA)
    fit(df, schema, mechanism="independent", rho=0.05, ledger_path=ledger, lifetime_rho=0.08)
    before = ledger.read_bytes()
    with pytest.raises(BudgetExceededError, match=r"requested rho=0.05, remaining rho=0.03"):
        fit(df, schema, mechanism="independent", rho=0.05, ledger_path=ledger)
    assert ledger.read_bytes() == before
    synth = fit(df, schema, mechanism="independent", rho=0.03, ledger_path=ledger)
    assert synth.privacy.rho == pytest.approx(0.03)
    state = read_state(ledger)
    assert [r.status for r in state.runs] == ["committed", "committed"]
    assert state.runs[0].label == "fit" and len(state.runs[0].steps) == 15


def test_failure_before_any_read_returns_the_reservation(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with pytest.raises(Exception):  # noqa: B017 - whatever the reader raises
        fit(tmp_path / "missing.csv", load_schema(SCHEMA), mechanism="independent", rho=0.05,
            ledger_path=ledger, lifetime_rho=0.05)
    (run_,) = read_state(ledger).runs
    assert run_.status == "released" and run_.steps == ()
    assert Accountant(ZCDP(0.05), ledger_path=ledger).prior_rho == 0.0  # the whole cap is back


def test_failure_after_a_read_keeps_the_whole_reservation(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    acc = Accountant(ZCDP(0.5), ledger_path=ledger, lifetime=ZCDP(1.0), label="crashy")
    acc.charge(ZCDPEvent(0.1, "one step"))
    acc.abort()
    (run_,) = read_state(ledger).runs
    assert run_.status == "failed"
    nxt = Accountant(ZCDP(0.5), ledger_path=ledger)
    assert nxt.prior_rho == pytest.approx(0.5)  # 0.1 charged + 0.4 never returned
    with pytest.raises(ConfigError, match="has ended"):
        acc.charge(ZCDPEvent(0.01))


# ------------------------------------------------------------------------ SIGKILL mid-fit
def test_sigkill_mid_fit_leaves_a_reservation_the_next_run_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpsynth", "fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "aim",
         "--epsilon", "1", "--lifetime-epsilon", "2", "--ledger", str(ledger),
         "--out", str(tmp_path / "killed")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if ledger.exists() and any(r.get("type") == "charge" for r in _complete(ledger)):
                break
            assert proc.poll() is None, "the fit ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (killed,) = read_state(ledger).runs
    assert killed.status == "reserved" and killed.label == "fit"
    # the next run sees the whole reservation as spent: epsilon 1.9 no longer fits under 2
    code, _, err = run(fit_args(ledger, tmp_path / "b", "--epsilon", "1.9"), capsys)
    assert code == 3 and "under the lifetime cap" in err
    code, out, err = run(["ledger", "show", ledger, "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["open_reservations"] == [killed.run]
    (entry,) = shown["runs"]
    assert entry["explanation"].startswith(f"reserved by run {killed.run} at ")
    assert "never committed" in entry["explanation"] and "counted as spent" in entry["explanation"]
    assert entry["counted_rho"] == pytest.approx(killed.reserved_rho)
    code, out, _ = run(["ledger", "show", ledger], capsys)
    assert code == 0 and "never committed (still running, or killed)" in out


def _complete(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


# -------------------------------------------------------------------------- the cap
def test_lifetime_cap_cannot_be_raised_implicitly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.jsonl"
    assert run(fit_args(ledger, tmp_path / "a", "--epsilon", "1"), capsys)[0] == 0
    before = ledger.read_bytes()
    (cap,) = [r for r in records(ledger) if r["type"] == "cap"]
    assert cap["cap"] == {"type": "ApproxDP", "epsilon": 1.0, "delta": 1e-9}  # the default
    code, _, err = run(fit_args(ledger, tmp_path / "b", "--epsilon", "1",
                                "--lifetime-epsilon", "10"), capsys)
    assert code == 2 and "lifetime cap epsilon=1 (delta=1e-09), stored" in err
    assert "raise-cap" in err and ledger.read_bytes() == before
    with pytest.raises(ConfigError, match="lifetime cap epsilon=1"):
        fit(pd.read_csv(SAMPLE, dtype=str), load_schema(SCHEMA), mechanism="independent",
            epsilon=0.1, ledger_path=ledger, lifetime_rho=5.0)
    with pytest.raises(ConfigError, match="needs a ledger"):
        fit(pd.read_csv(SAMPLE, dtype=str), load_schema(SCHEMA), mechanism="independent",
            epsilon=0.1, lifetime_epsilon=5.0)
    assert ledger.read_bytes() == before


def test_raise_cap_is_explicit_and_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.jsonl"
    assert run(fit_args(ledger, tmp_path / "a", "--epsilon", "1"), capsys)[0] == 0
    assert run(fit_args(ledger, tmp_path / "b", "--epsilon", "1"), capsys)[0] == 3
    code, _, err = run(["ledger", "raise-cap", ledger, "--epsilon", "0.5", "--reason", "x"], capsys)
    assert code == 2 and "must exceed the stored lifetime cap epsilon=1" in err
    code, out, err = run(["ledger", "raise-cap", ledger, "--epsilon", "2",
                          "--reason", "steering board 2026-12", "--by", "alice", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["previous"] == "epsilon=1 (delta=1e-09)"
    last = records(ledger)[-1]
    assert last["type"] == "raise-cap" and last["by"] == "alice"
    assert last["reason"] == "steering board 2026-12" and last["cap"]["epsilon"] == 2.0
    assert last["previous"]["epsilon"] == 1.0 and "time" in last
    assert run(fit_args(ledger, tmp_path / "b", "--epsilon", "1"), capsys)[0] == 0
    code, out, _ = run(["ledger", "show", ledger, "--json"], capsys)
    shown = json.loads(out)
    assert [c["by"] for c in shown["cap_history"]][1] == "alice"
    assert shown["counted_epsilon"] <= 2.0 and len(shown["runs"]) == 2
    with pytest.raises(ConfigError, match="needs a --reason"):
        raise_cap(ledger, ApproxDP(3.0, 1e-9), reason=" ")


# ---------------------------------------------------------------------- concurrency
def test_two_processes_cannot_both_reserve_past_the_cap(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from dpsynth.privacy.accountant import Accountant
        from dpsynth.privacy.budget import ZCDP
        from dpsynth.errors import BudgetExceededError
        try:
            acc = Accountant(ZCDP(0.6), ledger_path=Path({str(ledger)!r}), lifetime=ZCDP(1.0))
        except BudgetExceededError:
            print("refused", flush=True)
            sys.exit(0)
        print("reserved", flush=True)
        time.sleep(1.0)  # hold the reservation: nothing charged, nothing committed yet
        acc.commit()
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outcomes == ["refused", "reserved"]
    assert [r["type"] for r in records(ledger)] == ["cap", "reserve", "end"]


# --------------------------------------------------------------------- old ledgers
def test_format1_ledger_is_read_and_gets_a_cap_on_first_use(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "old.jsonl"
    old = {"index": 0, "time": "2026-01-01T00:00:00+00:00", "rho": 0.3, "label": "old step",
           "event": ZCDPEvent(0.3, "old step").to_json(), "session": "s1"}
    ledger.write_text(json.dumps(old) + "\n")
    _code, out, _ = run(["ledger", "show", ledger, "--json"], capsys)
    shown = json.loads(out)
    assert shown["format"] == 1 and shown["cap"] is None and "format-1" in shown["note"]
    assert shown["runs"][0]["status"] == "legacy" and shown["counted_rho"] == pytest.approx(0.3)
    acc = Accountant(ZCDP(0.5), ledger_path=ledger, lifetime=ZCDP(1.0))
    assert acc.prior_rho == pytest.approx(0.3)
    kinds = [r.get("type") for r in records(ledger)]
    assert kinds == [None, "cap", "reserve"]  # appended; the old line is untouched
    assert read_state(ledger).cap == ZCDP(1.0)


def test_show_names_a_missing_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ledger", "show", tmp_path / "nope.jsonl"], capsys)
    assert code == 2 and "nope.jsonl does not exist" in err
