"""Attribute-inference risk (WP29), after the attack/baseline/control design of Giomi et al.

Threat model: the attacker knows every audited column of a target except the secret, finds
the nearest synthetic record on those columns (ties broken at random) and guesses its
secret value. A guess is right when it equals the truth (categorical; null equals null) or,
for a numeric secret, lies within ``tolerance`` of it: relative to the guess by default,
``|guess - truth| <= tolerance * |guess|`` (Anonymeter's rule, which scores a wage guess of
510 for a wage of 500 right and one of 600 wrong, whatever the column's range), or with
``numeric_match="scale"`` within ``tolerance`` times the column's public range (dpsynth's
earlier rule; on a skewed column it counts most guesses right, so the control succeeds
nearly always and the risk is undefined or its interval explodes). The control
attacks held-out people; the baseline guesses the secret of a random synthetic record. For a
categorical secret the risk is also given per value (Anonymeter's ``risk_for_groups``): the
attack and control rates restricted to people holding that value, against the overall
baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import EncodedTable, nearest_neighbors
from dpsynth.audit.risk import Estimator, RiskResult, residual_risk
from dpsynth.errors import ConfigError

__all__ = ["NUMERIC_MATCHES", "InferenceResult", "NumericMatch", "check_numeric_match", "correct_guesses",
           "inference_risk"]


NumericMatch = Literal["relative", "scale"]
NUMERIC_MATCHES: tuple[str, ...] = ("relative", "scale")


def check_numeric_match(value: str) -> None:
    """Refuse an unknown rule for numeric guesses (a :class:`ConfigError` naming the choices)."""
    if value not in NUMERIC_MATCHES:
        raise ConfigError(f"numeric_match ({value!r}) must be one of {', '.join(NUMERIC_MATCHES)}")


def correct_guesses(truth: NDArray[np.float64] | NDArray[np.int64],
                    guess: NDArray[np.float64] | NDArray[np.int64], *, numeric: bool,
                    scale: float, tolerance: float,
                    match: NumericMatch = "relative") -> NDArray[np.bool_]:
    """Which guesses count as right (see the module docstring)."""
    if not numeric:
        return np.asarray(truth == guess)
    t = np.asarray(truth, dtype=np.float64)
    g = np.asarray(guess, dtype=np.float64)
    both_null = np.isnan(t) & np.isnan(g)
    width = tolerance * (np.abs(g) if match == "relative" else scale)
    with np.errstate(invalid="ignore"):
        close = np.abs(t - g) <= width
    return np.asarray(both_null | close)


def _secret_values(t: EncodedTable, secret: str) -> tuple[NDArray[np.float64], bool, float]:
    if secret in t.num_columns:
        j = t.num_columns.index(secret)
        return t.num[:, j], True, float(t.scales[j])
    return t.column(secret).astype(np.float64), False, 1.0


def _attack(targets: EncodedTable, syn: EncodedTable, secret: str, aux: Sequence[str],
            rng: np.random.Generator, tolerance: float, match: NumericMatch) -> NDArray[np.bool_]:
    """Which targets' secrets the nearest-neighbour attacker guesses right."""
    idx, _ = nearest_neighbors(targets.select(aux), syn.select(aux), k=1, rng=rng)
    truth, numeric, scale = _secret_values(targets, secret)
    guess = _secret_values(syn, secret)[0][idx[:, 0]]
    return correct_guesses(truth, guess, numeric=numeric, scale=scale, tolerance=tolerance,
                           match=match)


@dataclass(frozen=True)
class InferenceResult:
    """Inference risk per secret (and per value of a categorical secret); ``risk`` is the worst.

    Attributes:
        per_secret: Risk of each secret column.
        per_value: For each categorical secret, the risk restricted to targets holding each
            value (keyed by the value's label, or its code without labels); a value rare in
            the data can be inferred far better than the column as a whole.
    """

    per_secret: dict[str, RiskResult]
    per_value: dict[str, dict[str, RiskResult]] = field(default_factory=dict)

    @property
    def worst_secret(self) -> str:
        """The secret with the highest residual risk (undefined risks rank last)."""
        return max(self.per_secret, key=lambda s: (not self.per_secret[s].undefined,
                                                   self.per_secret[s].value
                                                   if not self.per_secret[s].undefined else 0))

    @property
    def risk(self) -> RiskResult:
        """The headline (worst) risk."""
        return self.per_secret[self.worst_secret]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"risk": self.risk.to_json(), "worst_secret": self.worst_secret,
                "per_secret": {s: r.to_json() for s, r in self.per_secret.items()},
                "per_value": {s: {v: r.to_json() for v, r in d.items()}
                              for s, d in self.per_value.items()}}


def _per_value(secret: str, hits: NDArray[np.bool_], c_hits: NDArray[np.bool_] | None,
               targets: EncodedTable, control: EncodedTable | None, base: int,
               labels: Sequence[str] | None, confidence: float, ci: Estimator
               ) -> dict[str, RiskResult]:
    truth = targets.column(secret)
    c_truth = None if control is None else control.column(secret)
    out: dict[str, RiskResult] = {}
    for code in np.unique(truth):
        mask = truth == code
        name = "null" if code < 0 else (str(labels[int(code)]) if labels is not None
                                        and int(code) < len(labels) else str(int(code)))
        c_mask = None if c_truth is None else c_truth == code
        n_c = 0 if c_mask is None else int(c_mask.sum())
        r = residual_risk(n_success=int(hits[mask].sum()), n_attacks=int(mask.sum()),
                          n_baseline_success=base, n_baseline=targets.n_rows,
                          n_control_success=None if c_hits is None or c_mask is None or not n_c
                          else int(c_hits[c_mask].sum()), n_control=n_c,
                          what=f"inference on {secret!r} = value {name}",
                          confidence=confidence, ci=ci)
        if control is not None and n_c == 0:
            r = dataclasses.replace(r, warnings=(
                "no held-out record has this value, so its risk is the raw attack rate",))
        out[name] = r
    return out


def inference_risk(targets: EncodedTable, syn: EncodedTable, control: EncodedTable | None,
                   *, secrets: Sequence[str], rng: np.random.Generator,
                   tolerance: float = 0.05, confidence: float = 0.95,
                   ci: Estimator = "conservative",
                   value_labels: Mapping[str, Sequence[str]] | None = None,
                   numeric_match: NumericMatch = "relative") -> InferenceResult:
    """Attribute-inference risk for each secret column, and per value of categorical ones.

    Args:
        targets: Encoded training records attacked.
        syn: Encoded synthetic records.
        control: Encoded held-out records, or None.
        secrets: Secret columns; the attacker knows all other audited columns.
        rng: Randomness (tie-breaking, baseline).
        tolerance: Numeric guesses within this tolerance count as right (see
            ``numeric_match``).
        confidence: Two-sided confidence level of the intervals.
        ci: Estimator (``"conservative"`` or Anonymeter's ``"wilson-centre"``).
        value_labels: Labels of each categorical secret's codes (``MixedEncoder.categories``),
            used to name the per-value risks; codes are used without them.
        numeric_match: ``"relative"`` (within ``tolerance * |guess|``, Anonymeter's rule) or
            ``"scale"`` (within ``tolerance`` times the column's public range).
    """
    check_numeric_match(numeric_match)
    if not secrets:
        raise ConfigError("inference needs at least one secret column")
    if targets.n_rows == 0:
        raise ConfigError("inference needs at least one target record")
    out: dict[str, RiskResult] = {}
    per_value: dict[str, dict[str, RiskResult]] = {}
    for secret in secrets:
        aux = [c for c in targets.columns if c != secret]
        if not aux:
            raise ConfigError(f"inference on {secret!r} needs at least one other column")
        hits = _attack(targets, syn, secret, aux, rng, tolerance, numeric_match)
        c_hits = None if control is None else _attack(control, syn, secret, aux, rng,
                                                      tolerance, numeric_match)
        truth, numeric, scale = _secret_values(targets, secret)
        pool = _secret_values(syn, secret)[0]
        guess = pool[rng.integers(0, pool.size, size=truth.size)]
        base = int(correct_guesses(truth, guess, numeric=numeric, scale=scale,
                                   tolerance=tolerance, match=numeric_match).sum())
        out[secret] = residual_risk(
            n_success=int(hits.sum()), n_attacks=targets.n_rows, n_baseline_success=base,
            n_baseline=targets.n_rows,
            n_control_success=None if c_hits is None else int(c_hits.sum()),
            n_control=0 if control is None else control.n_rows, confidence=confidence,
            ci=ci, what=f"inference on {secret!r}")
        if not numeric:
            per_value[secret] = _per_value(
                secret, hits, c_hits, targets, control, base,
                None if value_labels is None else value_labels.get(secret),
                confidence, ci)
    return InferenceResult(out, per_value)
