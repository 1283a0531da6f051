"""The result of one audit: what each attack found, what was skipped, and its JSON form.

:class:`AuditResult` is computed from the real data: it is confidential and not
differentially private (DESIGN §2 rule 7). A measure the audit could not run (no
quasi-identifiers, no secrets, no holdout) is recorded in ``skipped`` with the reason and
the flag that enables it; a measure that ran but is undefined (its control attack succeeds
on nearly everyone) keeps its reason in its own risk object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dpsynth.audit.inference import InferenceResult
from dpsynth.audit.kanonymity import SyntacticReport
from dpsynth.audit.linkage import LinkabilityResult
from dpsynth.audit.membership import MembershipAttackResult
from dpsynth.audit.policy import PolicyEvidence, PolicyOutcome
from dpsynth.audit.risk import RiskResult
from dpsynth.audit.singling_out import SinglingOutResult

__all__ = ["DISCLAIMER", "MEMBERSHIP_ALPHA", "RISK_CONFIDENCE", "WP29", "AuditResult",
           "skipped_risk"]

RISK_CONFIDENCE = 0.95
MEMBERSHIP_ALPHA = 1e-3
#: The three WP29 measures, in report order.
WP29 = ("singling_out", "linkability", "inference")
DISCLAIMER = (
    "CONFIDENTIAL. These numbers are empirical evidence from specific attacks, not guarantees: "
    "a low risk only means these attacks failed, and a stronger attacker may succeed. Only a "
    "differential-privacy guarantee (the release manifest) bounds every attack. This audit was "
    "computed from the real (confidential) data, is not differentially private, and must not "
    "be published or added to the release bundle."
)


def skipped_risk(reason: str) -> dict[str, Any]:
    """The JSON of a risk that was not measured (same keys a reader looks up first)."""
    return {"value": None, "ci": None, "undefined": False, "undefined_reason": None,
            "skipped": True, "skipped_reason": reason, "warnings": []}


def _evidence_risk(risk: RiskResult | None) -> tuple[tuple[float, float] | None, str | None]:
    """A risk's interval for the policy, or its undefined reason."""
    if risk is None:
        return None, None
    if risk.undefined:
        return None, risk.undefined_reason or "undefined"
    return (float(risk.ci.lo), float(risk.ci.hi)), None


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit found. Confidential: computed from real data, not DP.

    Attributes:
        skipped: Measures not run, each with the reason and the flag that enables it.
    """

    membership: dict[str, MembershipAttackResult]
    singling_out: SinglingOutResult | None
    linkability: LinkabilityResult | None
    inference: InferenceResult | None
    k_anonymity: SyntacticReport | None
    k_anonymity_real: SyntacticReport | None
    exact_copies: dict[str, Any]
    outliers: dict[str, Any]
    meta: dict[str, Any]
    warnings: tuple[str, ...] = ()
    manifest: Mapping[str, Any] | None = None
    policy: PolicyOutcome | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def _membership_json(self) -> dict[str, Any]:
        head = self.membership.get("distance")
        out: dict[str, Any] = {
            "auc": None, "auc_ci": None, "epsilon_lower_bound": None,
            "gdp_mu_lower_bound": None, "tpr_at_fpr_0.001": None, "tpr_at_fpr_0.01": None,
            "headline_attack": "distance" if head else None, "max_auc_ci": None,
            "attacks": {k: v.to_json() for k, v in self.membership.items()},
            "confidence": 1.0 - MEMBERSHIP_ALPHA,
            "warnings": [w for w in self.warnings if w.startswith("membership")],
        }
        if head is not None:
            out.update(head.to_json())
            out.pop("threat_model", None)
            worst = max(self.membership.values(), key=lambda r: r.auc_ci.hi)
            out["max_auc_ci"] = worst.auc_ci.as_list()
            out["epsilon_lower_bound"] = max(r.epsilon.epsilon for r in self.membership.values())
            out["gdp_mu_lower_bound"] = max(r.epsilon.mu for r in self.membership.values())
        return out

    def evidence(self) -> PolicyEvidence:
        """The numbers the release policy is checked against."""
        member = self._membership_json()
        privacy = self.manifest.get("privacy") if isinstance(self.manifest, Mapping) else None
        privacy = privacy if isinstance(privacy, Mapping) else {}
        auc = member["max_auc_ci"]
        risks = {"singling_out": None if self.singling_out is None else self.singling_out.risk,
                 "linkability": None if self.linkability is None else self.linkability.risk,
                 "inference": None if self.inference is None else self.inference.risk}
        cis = {k: _evidence_risk(r) for k, r in risks.items()}
        copies = self.exact_copies.get("rare")
        return PolicyEvidence(
            manifest_epsilon=privacy.get("epsilon"), manifest_delta=privacy.get("delta"),
            membership_max_auc_ci=None if auc is None else (float(auc[0]), float(auc[1])),
            membership_epsilon_lb=member["epsilon_lower_bound"],
            singling_out_ci=cis["singling_out"][0], linkability_ci=cis["linkability"][0],
            inference_ci=cis["inference"][0],
            rare_exact_copies=None if copies is None else int(copies),
            rare_allowed=float(self.exact_copies.get("rare_allowed") or 0.0),
            closer_to_real_ci=_pair(self.exact_copies.get("closer_to_real_ci")),
            closer_to_real_near_ci=_pair(self.exact_copies.get("closer_to_real_near_ci")),
            k=None if self.k_anonymity is None else self.k_anonymity.k,
            undefined={k: reason for k, (_, reason) in cis.items() if reason is not None},
            not_run=dict(self.skipped))

    def _wp29_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in WP29:
            res = getattr(self, key)
            out[key] = {"risk": skipped_risk(self.skipped.get(key, "not run"))} \
                if res is None else res.to_json()
        if "risk" not in out["linkability"]:  # the linkability result is flat: split it
            link = out["linkability"]
            extra = ("any_tie", "columns_a", "columns_b", "n_neighbors")
            out["linkability"] = {"risk": {k: v for k, v in link.items() if k not in extra},
                                  **{k: link.get(k) for k in extra}}
        return out

    def to_json(self, *, include_policy: bool = True) -> dict[str, Any]:
        """Nested JSON-ready dict (see docs/auditing.md for every key)."""
        kan: dict[str, Any] = {"skipped": True,
                               "skipped_reason": self.skipped.get("k_anonymity", "not run")}
        if self.k_anonymity is not None and self.k_anonymity_real is not None:
            kan = {**self.k_anonymity.to_json(), "computed_on": "synthetic",
                   "real": self.k_anonymity_real.to_json(),
                   "note": "informational only: certifies nothing for synthetic data"}
        js: dict[str, Any] = {
            "confidential": True,
            "disclaimer": DISCLAIMER,
            "membership": self._membership_json(),
            **self._wp29_json(),
            "k_anonymity": kan,
            "exact_copies": dict(self.exact_copies),
            "outliers": dict(self.outliers),
            "meta": dict(self.meta),
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
        }
        if include_policy:
            js["policy"] = (self.policy.to_json() if self.policy is not None else
                            {"passed": None, "failures": [], "skipped": [], "name": None})
        return js


def _pair(value: Any) -> tuple[float, float] | None:
    """A two-number interval from JSON-like data, or ``None``."""
    return None if value is None else (float(value[0]), float(value[1]))
