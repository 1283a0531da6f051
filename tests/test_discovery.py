"""DP schema discovery: what it may release, what it charges, and that hostile columns never break it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsynth import api
from dpsynth.errors import ConfigError
from dpsynth.mechanisms.discover import LABELS, classify_values, preview
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ApproxDP, epsilon_to_rho
from dpsynth.privacy.events import ApproxZCDPEvent
from dpsynth.privacy.frame_gate import PrivateFrame
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.schema_discovery import discover_schema, discovery_rho
from dpsynth.tabular.schema import parse_schema


def _table(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "colour": rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2]),
        "income": np.round(rng.lognormal(10, 1, size=n)).astype(int).astype(str),
        "score": np.round(rng.normal(50, 10, size=n), 2).astype(str),
        "when": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, size=n), unit="D"),
        "flag": rng.choice(["yes", "no"], size=n),
        "customer_id": [f"c{i:06d}" for i in range(n)],
    }).astype({"when": str})


def _discover(df: pd.DataFrame, epsilon: float = 1.0, delta: float = 1e-6) -> tuple[Accountant, object]:
    acc = Accountant(ApproxDP(epsilon, delta))
    found = discover_schema(df, acc, rho=acc.total_rho, delta=delta)
    return acc, found


def test_classes_are_decided_value_by_value() -> None:
    values = pd.Series(["12", "-3", "007", "1.5", "1e3", "2017-10-11", "2017-10-11T22:41:40Z", "Yes", "", None, "x"])
    assert list(classify_values(values)) == ["integer", "integer", "text", "decimal", "decimal", "date",
                                            "datetime", "boolean", "null", "null", "text"]
    assert set(classify_values(values)) <= set(LABELS)


def test_kinds_bounds_and_categories_of_a_clean_table() -> None:
    acc, found = _discover(_table())
    schema = found.schema  # type: ignore[attr-defined]
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"colour": "categorical", "income": "numeric", "score": "numeric", "when": "datetime",
                     "flag": "boolean", "customer_id": "identifier"}
    assert set(schema.column("colour").categories) == {"red", "green", "blue"}
    assert schema.column("income").dtype == "int" and schema.column("score").dtype == "float"
    lo, hi = schema.column("income").bounds
    assert lo <= 5_000 and 100_000 <= hi <= 1_000_000  # lognormal(10, 1): median 22k
    assert schema.column("when").bounds[0] <= "2015-01-01" and schema.column("when").bounds[1] >= "2017-12-01"
    assert all(c.source == "dp" for c in schema.columns if c.name != "customer_id")
    assert acc.epsilon() <= 1.0 + 1e-9


def test_a_rare_category_never_appears() -> None:
    df = _table(3000)
    df.loc[:3, "colour"] = "planted-rare"  # 4 rows, far below the threshold's 1-in-a-million bound
    for _ in range(5):
        _, found = _discover(df, epsilon=2.0)
        assert "planted-rare" not in found.schema.column("colour").categories  # type: ignore[attr-defined]


def test_a_planted_extreme_value_never_becomes_a_bound() -> None:
    df = _table(3000)
    df.loc[0, "income"] = "987654321"
    for _ in range(5):
        _, found = _discover(df, epsilon=2.0)
        assert found.schema.column("income").bounds[1] <= 5_000_000  # type: ignore[attr-defined]


def test_every_read_is_charged_and_the_ledger_adds_up() -> None:
    acc, found = _discover(_table(2000))
    schema = found.schema  # type: ignore[attr-defined]
    cost = sum(c.dp_rho for c in schema.columns if c.dp_rho is not None)
    assert cost == pytest.approx(acc.spent_rho, rel=1e-12)
    deltas = sum(e.event.delta for e in acc.ledger if isinstance(e.event, ApproxZCDPEvent))
    assert deltas == pytest.approx(sum(c.dp_delta or 0 for c in schema.columns), rel=1e-12)
    assert deltas <= 0.1 * 1e-6 + 1e-18  # the thresholds share a tenth of delta
    labels = [e.event.label for e in acc.ledger]
    assert all(label.startswith("discover ") for label in labels)


def test_declared_columns_stay_declared_and_cost_nothing() -> None:
    df = _table(2000)
    partial = parse_schema({"name": "p", "columns": [
        {"name": "colour", "kind": "categorical", "categories": ["red", "green", "blue", "violet"]}]})
    acc = Accountant(ApproxDP(1.0, 1e-6))
    found = discover_schema(df, acc, rho=acc.total_rho, delta=1e-6, partial=partial)
    assert found.schema.column("colour").categories == ["red", "green", "blue", "violet"]
    assert found.schema.column("colour").source == "declared"
    assert "colour" not in found.discovered
    assert not any("'colour'" in e.event.label for e in acc.ledger)


def test_person_level_bounding_keeps_max_rows_per_person() -> None:
    df = pd.DataFrame({"person": ["a"] * 50 + ["b"] * 2, "v": ["x"] * 52})
    acc = Accountant(ApproxDP(1e9, 1e-6))  # noise far below one row, so the count is readable
    gate = PrivateFrame(df, acc, key=MechanismKey.for_audit("t"), unit_column="person", max_rows=3)
    assert gate.columns == ["v"] and gate.bound == 3
    counts = gate.class_counts("v", lambda s: pd.Series("text", index=s.index), ["text"], sigma=0.01, label="t")
    assert counts["text"] == 5  # 3 rows of a, 2 of b
    assert acc.ledger[0].event.sensitivity == 3.0


def test_the_gate_refuses_a_rule_that_breaks_the_sensitivity() -> None:
    acc = Accountant(ApproxDP(1.0, 1e-6))
    gate = PrivateFrame(pd.DataFrame({"v": ["1", "2"]}), acc, key=MechanismKey.fresh())
    with pytest.raises(ConfigError, match="every row one of"):
        gate.class_counts("v", lambda s: s, ["1"], sigma=100.0, label="bad")
    with pytest.raises(ConfigError, match="cell in"):
        gate.histogram("v", lambda s: np.array([0, 7]), 3, sigma=100.0, label="bad")


def test_release_budget_rule_leaves_the_model_what_eps_minus_e_gives() -> None:
    rho = discovery_rho(1.0, 0.1, 1e-9)
    assert rho == pytest.approx(epsilon_to_rho(1.0, 1e-9) - epsilon_to_rho(0.9, 1e-9))
    with pytest.raises(ConfigError):
        discovery_rho(1.0, 1.0, 1e-9)


def test_preview_reads_no_data_and_states_the_category_threshold() -> None:
    plan = preview(["a", "b", "user_id"], rho=0.01, delta=1e-9)
    assert plan["columns_discovered"] == 2 and plan["identifier_names"] == ["user_id"]
    assert plan["rows_to_keep_a_category"] > 1


def test_fit_with_discovery_states_one_epsilon_for_everything() -> None:
    synth = api.fit(_table(3000), None, mechanism="mst", epsilon=1.0, delta=1e-9, discover_schema_epsilon=0.2)
    assert synth.privacy.epsilon is not None and synth.privacy.epsilon <= 1.0 + 1e-9
    assert synth.privacy.epsilon > 0.99  # the whole budget is spent
    labels = [s.label for s in synth.privacy.ledger]
    assert labels[0].startswith("discover ") and any(lbl.startswith("mst") for lbl in labels)
    assert not any("schema facts" in lbl for lbl in labels)  # discovered facts are not charged twice
    assert not any("outside this run" in c for c in synth.privacy.caveats)
    assert len(synth.sample(100, seed=0)) == 100


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.text(max_size=12), st.integers(-10**12, 10**12).map(str),
                          st.floats(allow_nan=True, allow_infinity=True).map(str),
                          st.sampled_from(["", "?", "9999-99-99", "1900-02-30", "2017-10-11T22:41:40Z"])),
                min_size=0, max_size=40))
def test_discovery_never_raises_on_hostile_columns(values: list[str | None]) -> None:
    df = pd.DataFrame({"hostile": pd.Series(values, dtype="object"), "steady": ["a"] * len(values)})
    acc = Accountant(ApproxDP(1.0, 1e-6))
    try:
        found = discover_schema(df, acc, rho=acc.total_rho, delta=1e-6)
    except Exception as exc:  # only the documented refusal: nothing left to model
        assert "no column to model" in str(exc)
        return
    assert math.isfinite(acc.spent_rho) and acc.spent_rho <= acc.total_rho * (1 + 1e-9)
    assert found.schema.column("hostile") is not None


def test_a_release_with_discovery_states_and_verifies_one_epsilon(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from dpsynth.bundle.verify import ledger_epsilon, verify_bundle
    from dpsynth.bundle.write import release
    from dpsynth.privacy.ledger import read_state

    ledger = tmp_path / "ledger.jsonl"
    result = release(_table(3000), None, mechanism="mst", epsilon=1.0, delta=1e-9, out=tmp_path / "b",
                     discover_schema_epsilon=0.2, ledger_path=ledger)
    assert verify_bundle(tmp_path / "b").ok
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    privacy = manifest["privacy"]
    assert privacy["epsilon"] == pytest.approx(ledger_epsilon(privacy["ledger"], 1e-9), rel=1e-9)
    assert result.epsilon is not None and result.epsilon <= 1.0 + 1e-9
    assert not privacy["private_schema_accepted"]
    assert privacy["requested"]["discover_schema_epsilon"] == 0.2
    state = read_state(ledger)
    assert sum(e.rho for r in state.runs for e in r.steps) == pytest.approx(privacy["rho"], rel=1e-9)
    statement = (tmp_path / "b" / "privacy_statement.md").read_text()
    assert "Schema derived under differential privacy" in statement
    schema_text = (tmp_path / "b" / "schema.yaml").read_text()
    assert "source: dp" in schema_text and "private_inferred" not in schema_text


@pytest.mark.parametrize("column", [
    [None] * 200,                                   # all null
    ["same"] * 200,                                 # one distinct value
    ["ünïcödé ✓", "日本語", "Ελληνικά", "emoji 🙂"] * 50,  # unicode text
    ["3000-01-01", "2999-12-31", "1066-10-14"] * 60,  # dates out of the public calendar
    [str(v) for v in range(200)],                   # distinct integers
    ["1", "a", "2.5", "2017-01-01", "yes"] * 40,    # mixed classes
])
def test_discovery_of_hostile_columns_is_graceful(column: list[str | None]) -> None:
    df = pd.DataFrame({"hostile": pd.Series(column * 5, dtype="object"), "steady": ["a", "b"] * (len(column) * 5 // 2)})
    acc = Accountant(ApproxDP(4.0, 1e-6))
    found = discover_schema(df, acc, rho=acc.total_rho, delta=1e-6)
    assert found.schema.column("hostile").kind in {"identifier", "categorical", "numeric", "datetime", "boolean"}
    assert found.schema.column("steady").kind == "categorical"
    assert acc.spent_rho <= acc.total_rho * (1 + 1e-9)


def test_a_header_only_file_is_refused_with_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dpsynth.errors import SchemaError

    path = tmp_path / "empty.csv"
    path.write_text("a,b\n")
    acc = Accountant(ApproxDP(1.0, 1e-6))
    with pytest.raises(SchemaError, match="no column to model"):
        discover_schema(path, acc, rho=acc.total_rho, delta=1e-6)
