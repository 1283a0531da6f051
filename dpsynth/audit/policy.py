"""Audit policies as code: caps on a release and on the audit's evidence, loaded from YAML.

A policy can cap the claimed epsilon/delta of a release manifest, the upper confidence
bounds of the membership AUC and of the three WP29 risks, the empirical epsilon lower bound,
forbid exact copies of rare real records (beyond the chance collisions the holdout shows),
and ask for a minimum k. A cap on a number the
audit could not compute (e.g. membership AUC without a holdout) fails: the gate is closed
when the evidence is missing. Caps on epsilon/delta are checked only when a manifest is
given, unless ``manifest_required`` is set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from dpsynth.errors import ConfigError

#: Default cap of the near closer-to-real share's upper end (docs/auditing.md, "Calibration").
NEAR_CAP = 0.65

__all__ = ["NEAR_CAP", "Policy", "PolicyEvidence", "PolicyOutcome", "SupportsEvidence", "evaluate_policy",
           "load_policy"]


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Thresholds an audited release must meet. ``None`` disables a check.

    The defaults are the built-in default policy (``audits/policies/default.yaml``).
    """

    name: str = "default"
    max_epsilon: float | None = 10.0
    max_delta: float | None = 1e-5
    manifest_required: bool = False
    max_membership_auc_upper: float | None = 0.65
    max_membership_epsilon_lb: float | None = None
    max_singling_out_risk_upper: float | None = 0.4
    max_linkability_risk_upper: float | None = 0.4
    max_inference_risk_upper: float | None = 0.7
    forbid_rare_exact_copies: bool = True
    max_closer_to_real_share_upper: float | None = None
    max_closer_to_real_near_share_upper: float | None = NEAR_CAP
    min_k: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("name", "manifest_required", "forbid_rare_exact_copies"):
                continue
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"policy field {f.name!r} must be a finite number or null")
            if v < 0:
                raise ConfigError(f"policy field {f.name!r} ({v}) must be >= 0")
        if self.min_k is not None and not isinstance(self.min_k, int):
            raise ConfigError("policy field 'min_k' must be an integer or null")
        for name in ("manifest_required", "forbid_rare_exact_copies"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"policy field {name!r} must be true or false")


@dataclass(frozen=True)
class PolicyOutcome:
    """Result of checking a policy: ``passed`` iff ``failures`` is empty."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    policy_name: str = "default"

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"passed": self.passed, "failures": list(self.failures),
                "skipped": list(self.skipped), "name": self.policy_name}


def load_policy(path: str | Path) -> Policy:
    """Read a policy from a YAML file; unknown keys and bad types raise ConfigError."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {str(p)!r}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy file {str(p)!r} is not valid YAML") from exc
    return policy_from_mapping(data or {}, source=str(p))


def policy_from_mapping(data: Mapping[str, Any], *, source: str = "policy") -> Policy:
    """Build a policy from a mapping (as read from YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a policy must be a mapping of field: value")
    known = {f.name for f in dataclasses.fields(Policy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown policy fields {unknown}; known: {sorted(known)}")
    return Policy(**dict(data))


@dataclass(frozen=True, kw_only=True)
class PolicyEvidence:
    """The numbers a policy is checked against, owned here (the runner builds them).

    Attributes:
        manifest_epsilon: The release manifest's ``privacy.epsilon`` (``None``: no manifest
            or no value; any other non-number fails the cap).
        manifest_delta: The manifest's ``privacy.delta``.
        membership_max_auc_ci: Interval of the strongest membership attack's AUC.
        membership_epsilon_lb: Largest empirical epsilon lower bound of the attacks.
        singling_out_ci, linkability_ci, inference_ci: Risk intervals.
        rare_exact_copies: Rare real records copied verbatim (``None``: not counted).
        rare_allowed: Copies that chance collisions explain (from the holdout).
        closer_to_real_ci: Interval of the share of synthetic records nearer to a real
            record than to any holdout record (``None``: no holdout).
        closer_to_real_near_ci: The same share's interval among the quarter of synthetic
            records nearest to the pooled real and holdout records.
        k: k-anonymity of the synthetic data.
        undefined: Risks that were measured but are undefined (``singling_out``,
            ``linkability``, ``inference``), each with its one-line reason. An undefined
            risk is reported and never fails the policy: no number exists to cap.
        not_run: Measures the audit did not run, each with the reason and the flag that
            enables it; a cap on one of them fails (closed gate) and says why.
    """

    manifest_epsilon: object = None
    manifest_delta: object = None
    membership_max_auc_ci: tuple[float, float] | None = None
    membership_epsilon_lb: float | None = None
    singling_out_ci: tuple[float, float] | None = None
    linkability_ci: tuple[float, float] | None = None
    inference_ci: tuple[float, float] | None = None
    rare_exact_copies: int | None = None
    rare_allowed: float = 0.0
    closer_to_real_ci: tuple[float, float] | None = None
    closer_to_real_near_ci: tuple[float, float] | None = None
    k: int | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)
    not_run: Mapping[str, str] = field(default_factory=dict)


class SupportsEvidence(Protocol):
    """Anything that can give its policy evidence (an audit result)."""

    def evidence(self) -> PolicyEvidence:
        """The evidence of this result."""
        ...


def evaluate_policy(result: PolicyEvidence | SupportsEvidence, policy: Policy) -> PolicyOutcome:
    """Check audit evidence (an audit result, or its :class:`PolicyEvidence`) against a policy."""
    ev = result if isinstance(result, PolicyEvidence) else result.evidence()
    failures: list[str] = []
    skipped: list[str] = []
    for key, cap, value in (("epsilon", policy.max_epsilon, ev.manifest_epsilon),
                            ("delta", policy.max_delta, ev.manifest_delta)):
        if cap is None:
            continue
        if value is None:
            msg = f"privacy.{key} cap ({cap}) could not be checked: no manifest value"
            (failures if policy.manifest_required else skipped).append(msg)
        elif not isinstance(value, int | float) or float(value) > cap:
            failures.append(f"manifest privacy.{key} ({value}) exceeds the cap ({cap})")

    def cap_upper(label: str, ci: tuple[float, float] | None, cap: float | None,
                  key: str = "") -> None:
        if cap is None:
            return
        if key in ev.undefined:
            skipped.append(f"{label}: {ev.undefined[key]}")
        elif ci is None:
            why = f" ({ev.not_run[key]})" if key in ev.not_run else ""
            failures.append(f"{label} could not be computed{why}, but the policy caps it at {cap}")
        elif float(ci[1]) > cap:
            failures.append(f"{label} upper bound ({float(ci[1]):.3f}) exceeds the cap ({cap})")

    cap_upper("membership AUC", ev.membership_max_auc_ci, policy.max_membership_auc_upper,
              "membership")
    eps = ev.membership_epsilon_lb
    if policy.max_membership_epsilon_lb is not None:
        if eps is None:
            failures.append("membership epsilon lower bound could not be computed, but the "
                            f"policy caps it at {policy.max_membership_epsilon_lb}")
        elif float(eps) > policy.max_membership_epsilon_lb:
            failures.append(f"membership epsilon lower bound ({float(eps):.3f}) exceeds the "
                            f"cap ({policy.max_membership_epsilon_lb})")
    for key, ci, cap in (("singling_out", ev.singling_out_ci, policy.max_singling_out_risk_upper),
                         ("linkability", ev.linkability_ci, policy.max_linkability_risk_upper),
                         ("inference", ev.inference_ci, policy.max_inference_risk_upper)):
        cap_upper(f"{key} risk", ci, cap, key)
    if policy.forbid_rare_exact_copies:
        n = ev.rare_exact_copies
        if n is None:
            why = f" ({ev.not_run['exact_copies']})" if "exact_copies" in ev.not_run else ""
            failures.append(f"exact copies of rare records could not be counted{why}")
        elif int(n) > 0 and int(n) > float(ev.rare_allowed):
            failures.append(f"{int(n)} rare real records (unique on the quasi-identifiers) "
                            "appear verbatim in the synthetic data, more than chance "
                            f"collisions explain ({float(ev.rare_allowed):.1f}, from the holdout)")
    cap_upper("share of synthetic records closer to real than to holdout records", ev.closer_to_real_ci,
              policy.max_closer_to_real_share_upper, "closer_to_real")
    cap_upper("share of near synthetic records closer to real than to holdout records",
              ev.closer_to_real_near_ci, policy.max_closer_to_real_near_share_upper, "closer_to_real")
    if policy.min_k is not None:
        k = ev.k
        if k is None or int(k) < policy.min_k:
            failures.append(f"k-anonymity of the synthetic data ({k}) is below {policy.min_k}")
    return PolicyOutcome(passed=not failures, failures=failures, skipped=skipped,
                         policy_name=policy.name)
