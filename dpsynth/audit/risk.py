"""Residual risk from main, baseline and control attack success counts (Giomi et al. 2023).

The main attack targets records used to train the generator, the control attack the same
way targets held-out records, and the baseline is a naive attacker who does not look at
the synthetic data. The residual risk is ``(attack - control) / (1 - control)``: the part of
the attacker's success that cannot be explained by what the synthetic data teaches about the
population in general. Its interval combines the Wilson intervals of both rates at their
least favourable ends (conservative). Without a control set the risk is the plain attack
rate, flagged with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsynth.audit.stats import Interval, wilson_interval

__all__ = ["RiskResult", "residual_risk"]


@dataclass(frozen=True)
class RiskResult:
    """One WP29 risk estimate with its evidence.

    Attributes:
        value: Residual risk point estimate, clipped to [0, 1].
        ci: Conservative interval of the residual risk.
        attack_rate: Success rate of the main attack (training targets).
        attack_ci: Wilson interval of ``attack_rate``.
        baseline_rate: Success rate of the naive baseline attack.
        baseline_ci: Wilson interval of ``baseline_rate``.
        control_rate: Success rate on held-out targets, or None without a holdout.
        control_ci: Wilson interval of ``control_rate``, or None.
        n_attacks: Number of main attacks.
        n_control: Number of control attacks (0 without holdout).
        warnings: Human-readable caveats (no data values).
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

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "value": self.value, "ci": self.ci.as_list(), "confidence": self.ci.confidence,
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


def residual_risk(*, n_success: int, n_attacks: int, n_baseline_success: int,
                  n_baseline: int, n_control_success: int | None, n_control: int,
                  confidence: float = 0.95, what: str = "attack") -> RiskResult:
    """Combine attack, baseline and control outcomes into a residual risk.

    Args:
        n_success: Successful main attacks.
        n_attacks: Main attacks run (> 0).
        n_baseline_success: Successful baseline attacks.
        n_baseline: Baseline attacks run (> 0).
        n_control_success: Successful control attacks, or None without a holdout.
        n_control: Control attacks run.
        confidence: Level of the Wilson intervals.
        what: Name of the attack, used in warnings.

    Returns:
        The risk, with the conservative interval.
    """
    warnings: list[str] = []
    attack = wilson_interval(n_success, n_attacks, confidence)
    base = wilson_interval(n_baseline_success, n_baseline, confidence)
    rate = n_success / n_attacks
    base_rate = n_baseline_success / n_baseline
    if attack.hi <= base.lo or rate <= base_rate:
        warnings.append(f"the {what} attack is no better than the naive baseline; the attack "
                        "may be too weak for this data, so a low risk is weak evidence")
    if n_control_success is None or n_control == 0:
        warnings.append(f"no holdout given: the {what} risk is the raw attack success rate "
                        "without a control, so it also counts what the synthetic data reveals "
                        "about the population in general")
        return RiskResult(value=rate, ci=attack, attack_rate=rate, attack_ci=attack,
                          baseline_rate=base_rate, baseline_ci=base, control_rate=None,
                          control_ci=None, n_attacks=n_attacks, n_control=0,
                          warnings=tuple(warnings))
    control = wilson_interval(n_control_success, n_control, confidence)
    c_rate = n_control_success / n_control

    def risk(a: float, c: float) -> float:
        return 1.0 if c >= 1.0 else (a - c) / (1.0 - c)

    value = _clip(risk(rate, c_rate))
    lo = _clip(risk(attack.lo, control.hi))
    hi = _clip(risk(attack.hi, control.lo))
    if c_rate >= 1.0:
        warnings.append(f"the {what} control attack always succeeds; the risk is undefined "
                        "and reported as 1")
    return RiskResult(value=value, ci=Interval(lo, max(hi, value), confidence),
                      attack_rate=rate, attack_ci=attack, baseline_rate=base_rate,
                      baseline_ci=base, control_rate=c_rate, control_ci=control,
                      n_attacks=n_attacks, n_control=n_control, warnings=tuple(warnings))
