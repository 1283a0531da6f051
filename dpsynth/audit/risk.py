"""Residual risk from main, baseline and control attack success counts (Giomi et al. 2023).

The main attack targets records used to train the generator, the control attack the same
way targets held-out records, and the baseline is a naive attacker who does not look at
the synthetic data. The residual risk is ``(attack - control) / (1 - control)``: the part of
the attacker's success that cannot be explained by what the synthetic data teaches about the
population in general. Two estimators:

* ``"conservative"`` (default): the plain success rates, and an interval that combines the
  Wilson intervals of both rates at their least favourable ends;
* ``"wilson-centre"``: Anonymeter's estimator, the Wilson score centres as the rates and the
  residual's error propagated to first order (:func:`~dpsynth.audit.stats.residual_rate`).

When the control attack (almost) always succeeds — the lower end of its interval is at least
``undefined_above`` (0.9) — the residual risk is *undefined*: the attack succeeds on everyone,
member or not, so the data cannot tell whether the release leaks. The result then carries a
one-line reason and no number (``value`` is NaN, the JSON has ``null``). Without a control set
the risk is the plain attack rate, flagged with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from dpsynth.audit.stats import Interval, residual_rate, wilson_centre, wilson_interval
from dpsynth.errors import ConfigError

__all__ = ["ESTIMATORS", "UNDEFINED_CONTROL_LOWER", "Estimator", "RiskResult", "choose_headline",
           "residual_risk"]

Estimator = Literal["conservative", "wilson-centre"]
ESTIMATORS: tuple[str, ...] = ("conservative", "wilson-centre")
UNDEFINED_CONTROL_LOWER = 0.9
"""Control success whose interval's lower end reaches this leaves the residual risk undefined."""


@dataclass(frozen=True)
class RiskResult:
    """One WP29 risk estimate with its evidence.

    Attributes:
        value: Residual risk point estimate, clipped to [0, 1]; NaN when undefined.
        ci: Interval of the residual risk (NaN ends when undefined).
        attack_rate: Success rate of the main attack (training targets).
        attack_ci: Interval of ``attack_rate``.
        baseline_rate: Success rate of the naive baseline attack.
        baseline_ci: Interval of ``baseline_rate``.
        control_rate: Success rate on held-out targets, or None without a holdout.
        control_ci: Interval of ``control_rate``, or None.
        n_attacks: Number of main attacks.
        n_control: Number of control attacks (0 without holdout).
        warnings: Human-readable caveats (no data values).
        estimator: ``"conservative"`` or ``"wilson-centre"`` (see the module docstring).
        undefined_reason: Why the risk cannot be measured, or None when it can.
    """

    value: float
    ci: Interval
    attack_rate: float
    attack_ci: Interval
    baseline_rate: float
    baseline_ci: Interval
    control_rate: float | None
    control_ci: Interval | None
    n_attacks: int
    n_control: int
    warnings: tuple[str, ...] = ()
    estimator: str = "conservative"
    undefined_reason: str | None = None

    @property
    def undefined(self) -> bool:
        """True when the residual risk cannot be measured (see ``undefined_reason``)."""
        return self.undefined_reason is not None

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (``value`` and ``ci`` are null when the risk is undefined)."""
        return {
            "value": None if self.undefined else self.value,
            "ci": None if self.undefined else self.ci.as_list(),
            "confidence": self.ci.confidence, "estimator": self.estimator,
            "undefined": self.undefined, "undefined_reason": self.undefined_reason,
            "attack_rate": self.attack_rate, "attack_ci": self.attack_ci.as_list(),
            "baseline_rate": self.baseline_rate, "baseline_ci": self.baseline_ci.as_list(),
            "control_rate": self.control_rate,
            "control_ci": None if self.control_ci is None else self.control_ci.as_list(),
            "n_attacks": self.n_attacks, "n_control": self.n_control,
            "has_control": self.control_rate is not None,
            "warnings": list(self.warnings),
        }


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _rate_ci(k: float, n: int, confidence: float, estimator: str) -> tuple[float, Interval]:
    if estimator == "wilson-centre":
        est = wilson_centre(k, n, confidence)
        return _clip(est.value), est.interval()
    if k == int(k):
        return k / n, wilson_interval(int(k), n, confidence)
    est = wilson_centre(k, n, confidence)  # a size-corrected (fractional) count
    return k / n, est.interval()


def _residual(attack: tuple[float, Interval], control: tuple[float, Interval],
              k: tuple[float, float], n: tuple[int, int], confidence: float,
              estimator: str) -> tuple[float, Interval]:
    if estimator == "wilson-centre":
        r = residual_rate(wilson_centre(k[0], n[0], confidence),
                          wilson_centre(k[1], n[1], confidence))
        return _clip(r.value), r.interval()

    def risk(a: float, c: float) -> float:
        return 1.0 if c >= 1.0 else (a - c) / (1.0 - c)

    value = _clip(risk(attack[0], control[0]))
    lo = _clip(risk(attack[1].lo, control[1].hi))
    hi = _clip(risk(attack[1].hi, control[1].lo))
    return value, Interval(lo, max(hi, value), confidence)


def residual_risk(*, n_success: int, n_attacks: int, n_baseline_success: int,
                  n_baseline: int, n_control_success: float | None, n_control: int,
                  confidence: float = 0.95, what: str = "attack",
                  ci: Estimator = "conservative",
                  undefined_above: float = UNDEFINED_CONTROL_LOWER) -> RiskResult:
    """Combine attack, baseline and control outcomes into a residual risk.

    Args:
        n_success: Successful main attacks.
        n_attacks: Main attacks run (> 0).
        n_baseline_success: Successful baseline attacks.
        n_baseline: Baseline attacks run (> 0).
        n_control_success: Successful control attacks (may be fractional after a size
            correction), or None without a holdout.
        n_control: Control attacks run.
        confidence: Two-sided confidence level of the intervals.
        what: Name of the attack, used in warnings.
        ci: Estimator: ``"conservative"`` or ``"wilson-centre"`` (Anonymeter's).
        undefined_above: The risk is undefined when the control interval's lower end
            reaches this.

    Returns:
        The risk with its interval, or an undefined result with its reason.
    """
    if ci not in ESTIMATORS:
        raise ConfigError(f"ci ({ci!r}) must be one of {', '.join(ESTIMATORS)}")
    warnings: list[str] = []
    rate, attack = _rate_ci(n_success, n_attacks, confidence, ci)
    base_rate, base = _rate_ci(n_baseline_success, n_baseline, confidence, ci)
    if attack.hi <= base.lo or rate <= base_rate:
        warnings.append(f"the {what} attack is no better than the naive baseline; the attack "
                        "may be too weak for this data, so a low risk is weak evidence")
    def result(value: float, interval: Interval, c_rate: float | None,
               c_ci: Interval | None, reason: str | None = None) -> RiskResult:
        return RiskResult(value=value, ci=interval, attack_rate=rate, attack_ci=attack,
                          baseline_rate=base_rate, baseline_ci=base, control_rate=c_rate,
                          control_ci=c_ci, n_attacks=n_attacks,
                          n_control=0 if c_rate is None else n_control,
                          warnings=tuple(warnings), estimator=ci, undefined_reason=reason)

    if n_control_success is None or n_control == 0:
        warnings.append(f"no holdout given: the {what} risk is the raw attack success rate "
                        "without a control, so it also counts what the synthetic data reveals "
                        "about the population in general")
        return result(rate, attack, None, None)
    c_rate, control = _rate_ci(n_control_success, n_control, confidence, ci)
    if control.lo >= undefined_above:
        reason = (f"undefined: the {what} control attack succeeds on {c_rate:.0%} of held-out "
                  "people, so success on training people cannot be told apart from chance")
        warnings.append(reason)
        return result(math.nan, Interval(math.nan, math.nan, confidence), c_rate, control,
                      reason)
    value, interval = _residual((rate, attack), (c_rate, control),
                                (n_success, n_control_success), (n_attacks, n_control),
                                confidence, ci)
    return result(value, interval, c_rate, control)


def choose_headline(uni: RiskResult, multi: RiskResult, min_predicates: int = 50
                    ) -> tuple[RiskResult, str]:
    """The headline singling-out variant and why.

    The worse of the defined variants with at least ``min_predicates`` attacks; a smaller
    sample decides only when no variant has enough (then the larger sample is shown).
    """
    named = [("univariate", uni), ("multivariate", multi)]
    defined = [(m, r) for m, r in named if not r.undefined]
    if not defined:
        return multi, "both variants are undefined (control success near 1)"
    big = [(m, r) for m, r in defined if r.n_attacks >= min_predicates]
    if len(big) == 2:
        m, r = max(big, key=lambda x: x[1].value)
        return r, (f"{m}: the higher risk of the two variants, each with at least "
                   f"{min_predicates} predicates")
    if len(big) == 1:
        m, r = big[0]
        return r, (f"{m}: the only defined variant with at least {min_predicates} predicates; "
                   "a smaller sample never decides the headline")
    m, r = max(defined, key=lambda x: x[1].n_attacks)
    return r, (f"{m}: no variant reached {min_predicates} predicates, so the one with more "
               f"({r.n_attacks}) is shown; its wide interval is the honest result")
