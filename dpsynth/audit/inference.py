"""Attribute-inference risk (WP29), after the attack/baseline/control design of Giomi et al.

Threat model: the attacker knows every audited column of a target except the secret, finds
the nearest synthetic record on those columns (ties broken at random) and guesses its
secret value. A guess is right when it equals the truth (categorical; null equals null) or,
for a numeric secret, lies within ``tolerance`` times the column scale of it. The control
attacks held-out people; the baseline guesses the secret of a random synthetic record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import EncodedTable, nearest_neighbors
from dpsynth.audit.risk import RiskResult, residual_risk
from dpsynth.errors import ConfigError

__all__ = ["InferenceResult", "correct_guesses", "inference_risk"]


def correct_guesses(truth: NDArray[np.float64] | NDArray[np.int64],
                    guess: NDArray[np.float64] | NDArray[np.int64], *, numeric: bool,
                    scale: float, tolerance: float) -> NDArray[np.bool_]:
    """Which guesses count as right (see the module docstring)."""
    if not numeric:
        return np.asarray(truth == guess)
    t = np.asarray(truth, dtype=np.float64)
    g = np.asarray(guess, dtype=np.float64)
    both_null = np.isnan(t) & np.isnan(g)
    with np.errstate(invalid="ignore"):
        close = np.abs(t - g) <= tolerance * scale
    return np.asarray(both_null | close)


def _secret_values(t: EncodedTable, secret: str) -> tuple[NDArray[np.float64], bool, float]:
    if secret in t.num_columns:
        j = t.num_columns.index(secret)
        return t.num[:, j], True, float(t.scales[j])
    return t.column(secret).astype(np.float64), False, 1.0


def _attack(targets: EncodedTable, syn: EncodedTable, secret: str, aux: Sequence[str],
            rng: np.random.Generator, tolerance: float) -> int:
    idx, _ = nearest_neighbors(targets.select(aux), syn.select(aux), k=1, rng=rng)
    truth, numeric, scale = _secret_values(targets, secret)
    guess = _secret_values(syn, secret)[0][idx[:, 0]]
    return int(correct_guesses(truth, guess, numeric=numeric, scale=scale,
                               tolerance=tolerance).sum())


@dataclass(frozen=True)
class InferenceResult:
    """Inference risk per secret; ``risk`` is the worst one."""

    per_secret: dict[str, RiskResult]

    @property
    def worst_secret(self) -> str:
        """The secret with the highest residual risk."""
        return max(self.per_secret, key=lambda s: self.per_secret[s].value)

    @property
    def risk(self) -> RiskResult:
        """The headline (worst) risk."""
        return self.per_secret[self.worst_secret]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"risk": self.risk.to_json(), "worst_secret": self.worst_secret,
                "per_secret": {s: r.to_json() for s, r in self.per_secret.items()}}


def inference_risk(targets: EncodedTable, syn: EncodedTable, control: EncodedTable | None,
                   *, secrets: Sequence[str], rng: np.random.Generator,
                   tolerance: float = 0.05, confidence: float = 0.95) -> InferenceResult:
    """Attribute-inference risk for each secret column.

    Args:
        targets: Encoded training records attacked.
        syn: Encoded synthetic records.
        control: Encoded held-out records, or None.
        secrets: Secret columns; the attacker knows all other audited columns.
        rng: Randomness (tie-breaking, baseline).
        tolerance: Numeric guesses within ``tolerance * scale`` count as right.
        confidence: Level of the Wilson intervals.
    """
    if not secrets:
        raise ConfigError("inference needs at least one secret column")
    if targets.n_rows == 0:
        raise ConfigError("inference needs at least one target record")
    out: dict[str, RiskResult] = {}
    for secret in secrets:
        aux = [c for c in targets.columns if c != secret]
        if not aux:
            raise ConfigError(f"inference on {secret!r} needs at least one other column")
        ok = _attack(targets, syn, secret, aux, rng, tolerance)
        c_ok = None if control is None else _attack(control, syn, secret, aux, rng, tolerance)
        truth, numeric, scale = _secret_values(targets, secret)
        pool = _secret_values(syn, secret)[0]
        guess = pool[rng.integers(0, pool.size, size=truth.size)]
        base = int(correct_guesses(truth, guess, numeric=numeric, scale=scale,
                                   tolerance=tolerance).sum())
        out[secret] = residual_risk(
            n_success=ok, n_attacks=targets.n_rows, n_baseline_success=base,
            n_baseline=targets.n_rows, n_control_success=c_ok,
            n_control=0 if control is None else control.n_rows, confidence=confidence,
            what=f"inference on {secret!r}")
    return InferenceResult(out)
