"""Run the whole audit of one synthetic release and hold its result.

:func:`run_audit` encodes real, synthetic and (optional) holdout records once, runs the
membership attacks, the three WP29 attacks, the syntactic metrics and the exact-copy scan,
and checks the policy. Its result is computed from the real data: it is confidential and
not differentially private (DESIGN §2 rule 7); it must never go into a release bundle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.audit.distance import EncodedTable, MixedEncoder, nearest_neighbors
from dpsynth.audit.inference import InferenceResult, inference_risk
from dpsynth.audit.kanonymity import SyntacticReport, qi_group_ids, qi_group_sizes, syntactic_report
from dpsynth.audit.linkage import default_split, linkability_risk
from dpsynth.audit.membership import MembershipAttackResult, distance_mia, domias_mia
from dpsynth.audit.policy import Policy, PolicyEvidence, PolicyOutcome, evaluate_policy
from dpsynth.audit.risk import RiskResult
from dpsynth.audit.singling_out import SinglingOutResult, singling_out_risk
from dpsynth.audit.targets import select_outlier_targets
from dpsynth.errors import ConfigError, SchemaError

__all__ = ["DISCLAIMER", "MEMBERSHIP_ALPHA", "RISK_CONFIDENCE", "AuditResult", "run_audit"]

logger = logging.getLogger(__name__)

RISK_CONFIDENCE = 0.95
MEMBERSHIP_ALPHA = 1e-3
N_OUTLIERS = 10
DISCLAIMER = (
    "CONFIDENTIAL. These numbers are empirical evidence from specific attacks, not guarantees: "
    "a low risk only means these attacks failed, and a stronger attacker may succeed. Only a "
    "differential-privacy guarantee (the release manifest) bounds every attack. This audit was "
    "computed from the real (confidential) data, is not differentially private, and must not "
    "be published or added to the release bundle."
)


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit found. Confidential: computed from real data, not DP."""

    membership: dict[str, MembershipAttackResult]
    singling_out: SinglingOutResult
    linkability: RiskResult
    linkability_columns: tuple[tuple[str, ...], tuple[str, ...]]
    inference: InferenceResult
    k_anonymity: SyntacticReport
    k_anonymity_real: SyntacticReport
    exact_copies: dict[str, int | float]
    outliers: dict[str, Any]
    meta: dict[str, Any]
    warnings: tuple[str, ...] = ()
    manifest: Mapping[str, Any] | None = None
    policy: PolicyOutcome | None = None

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
        manifest = self.manifest
        privacy = manifest.get("privacy") if isinstance(manifest, Mapping) else None
        privacy = privacy if isinstance(privacy, Mapping) else {}

        def ci(value: Any) -> tuple[float, float] | None:
            return None if value is None else (float(value[0]), float(value[1]))

        copies = self.exact_copies.get("rare")
        return PolicyEvidence(
            manifest_epsilon=privacy.get("epsilon"), manifest_delta=privacy.get("delta"),
            membership_max_auc_ci=ci(member["max_auc_ci"]),
            membership_epsilon_lb=member["epsilon_lower_bound"],
            singling_out_ci=ci(_at(self.singling_out.to_json(), "risk", "ci")),
            linkability_ci=ci(self.linkability.to_json()["ci"]),
            inference_ci=ci(_at(self.inference.to_json(), "risk", "ci")),
            rare_exact_copies=None if copies is None else int(copies),
            rare_allowed=float(self.exact_copies.get("rare_allowed") or 0.0),
            k=_at(self.k_anonymity.to_json(), "k"),
        )

    def to_json(self, *, include_policy: bool = True) -> dict[str, Any]:
        """Nested JSON-ready dict (see docs/auditing.md for every key)."""
        js: dict[str, Any] = {
            "confidential": True,
            "disclaimer": DISCLAIMER,
            "membership": self._membership_json(),
            "singling_out": self.singling_out.to_json(),
            "linkability": {"risk": self.linkability.to_json(),
                            "columns_a": list(self.linkability_columns[0]),
                            "columns_b": list(self.linkability_columns[1])},
            "inference": self.inference.to_json(),
            "k_anonymity": {**self.k_anonymity.to_json(), "computed_on": "synthetic",
                            "real": self.k_anonymity_real.to_json(),
                            "note": "informational only: certifies nothing for synthetic data"},
            "exact_copies": dict(self.exact_copies),
            "outliers": dict(self.outliers),
            "meta": dict(self.meta),
            "warnings": list(self.warnings),
        }
        if include_policy:
            js["policy"] = (self.policy.to_json() if self.policy is not None else
                            {"passed": None, "failures": [], "skipped": [], "name": None})
        return js


def _at(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a level is missing."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _check_columns(name: str, frame: pd.DataFrame, cols: Sequence[str]) -> None:
    if frame.columns.has_duplicates:
        raise SchemaError(f"the {name} data has duplicate column names")
    for c in cols:
        if c not in frame.columns:
            raise SchemaError(f"column {c!r} is missing from the {name} data")


def _exact_copies(r: EncodedTable, s: EncodedTable, h: EncodedTable | None,
                  rare: np.ndarray, rare_h: np.ndarray | None) -> dict[str, int | float]:
    """Verbatim copies of real records, with the holdout's chance-collision rate as control.

    ``rare_allowed`` is the number of rare copies explainable by chance: the holdout's rate
    of rare records found verbatim in the synthetic data, scaled to the real data, plus
    three Poisson standard deviations. Without a holdout it is 0.
    """
    syn_keys = set(s.row_keys().tolist())
    real_keys = r.row_keys().tolist()
    copied = np.fromiter((k in syn_keys for k in real_keys), bool, len(real_keys))
    real_set = set(real_keys)
    syn_from_real = sum(1 for k in s.row_keys().tolist() if k in real_set)
    out: dict[str, int | float] = {
        "real_records_copied": int(copied.sum()),
        "real_share_copied": float(copied.mean()) if copied.size else 0.0,
        "synthetic_share_copies": syn_from_real / max(s.n_rows, 1),
        "n_rare": int(rare.sum()),
        "rare": int((copied & rare).sum()),
        "rare_allowed": 0.0,
    }
    if h is not None and rare_h is not None:
        hk = h.row_keys().tolist()
        h_copied = np.fromiter((k in syn_keys for k in hk), bool, len(hk))
        out["holdout_records_copied"] = int(h_copied.sum())
        out["holdout_share_copied"] = float(h_copied.mean()) if h_copied.size else 0.0
        out["holdout_n_rare"] = int(rare_h.sum())
        out["holdout_rare"] = int((h_copied & rare_h).sum())
        if rare_h.sum() > 0:
            expected = out["holdout_rare"] / int(rare_h.sum()) * int(rare.sum())
            out["rare_allowed"] = expected + 3.0 * float(np.sqrt(expected))
    return out


def _outliers(r: EncodedTable, s: EncodedTable, h: EncodedTable | None,
              rng: np.random.Generator) -> dict[str, Any]:
    n = min(N_OUTLIERS, r.n_rows - 1)
    if n < 1 or r.n_rows < 7:
        return {"n_targets": 0}
    idx = select_outlier_targets(r, n, k=5)
    _, d = nearest_neighbors(r.take(idx), s, k=1)
    out: dict[str, Any] = {"n_targets": int(idx.size),
                           "exact_copies": int((d[:, 0] == 0.0).sum()),
                           "median_distance_to_synthetic": float(np.median(d))}
    if h is not None and h.n_rows >= 7:
        hidx = select_outlier_targets(h, min(N_OUTLIERS, h.n_rows - 1), k=5)
        _, dh = nearest_neighbors(h.take(hidx), s, k=1)
        out["holdout_median_distance_to_synthetic"] = float(np.median(dh))
        out["holdout_exact_copies"] = int((dh[:, 0] == 0.0).sum())
    return out


def _membership(r: EncodedTable, s: EncodedTable, h: EncodedTable | None, targets: EncodedTable,
                control: EncodedTable | None, t_idx: np.ndarray, n_t: int,
                rng: np.random.Generator, warnings: list[str]) -> dict[str, MembershipAttackResult]:
    """The membership attacks of :func:`run_audit` (skipped, with a warning, without enough holdout)."""
    membership: dict[str, MembershipAttackResult] = {}
    if h is None or control is None:
        warnings.append("membership: no holdout given, so there are no non-members to "
                        "compare with; membership inference was not run")
    elif n_t < 8:
        warnings.append("membership: fewer than 8 holdout records; membership inference was "
                        "not run")
    else:
        membership["distance"] = distance_mia(targets, control, s, rng=rng,
                                              alpha=MEMBERSHIP_ALPHA)
        if h.n_rows >= 16:
            perm = rng.permutation(h.n_rows)
            ref, pool = perm[: h.n_rows // 2], perm[h.n_rows // 2:]
            m = min(n_t, pool.size)
            membership["domias"] = domias_mia(
                r.take(t_idx[:m]), h.take(pool[:m]), s, h.take(ref), rng=rng,
                alpha=MEMBERSHIP_ALPHA)
        else:
            warnings.append("membership: fewer than 16 holdout records; DOMIAS was not run")
    return membership


def run_audit(real: pd.DataFrame, synthetic: pd.DataFrame, *, holdout: pd.DataFrame | None,
              quasi_identifiers: Sequence[str], secrets: Sequence[str],
              numeric_ranges: Mapping[str, tuple[float, float]] | None = None,
              policy: Policy | None = None, manifest: Mapping[str, Any] | None = None,
              n_attacks: int = 500, rng: np.random.Generator) -> AuditResult:
    """Audit a synthetic release against the real training data (confidential, not DP).

    Args:
        real: The real records the generator was trained on. Its columns are audited.
        synthetic: The synthetic release; it must hold every column of ``real``.
        holdout: Real records of the same population NOT used for training (the control and
            the non-members). Without it, membership attacks are skipped and the WP29 risks
            are reported without control, with warnings.
        quasi_identifiers: Columns an attacker may know (linkability splits them in two;
            k-anonymity groups on them).
        secrets: Sensitive columns (inference targets, l-diversity, t-closeness).
        numeric_ranges: Public ``(lo, hi)`` of numeric columns, the distance scales.
        policy: Policy to check; default :class:`Policy` (the built-in default policy).
        manifest: A release manifest dict, for the epsilon/delta caps.
        n_attacks: Targets (and predicates) per attack.
        rng: Randomness for sampling targets and for the attacks.

    Returns:
        The audit result, with the policy outcome.
    """
    if n_attacks < 10:
        raise ConfigError(f"n_attacks ({n_attacks}) must be >= 10")
    qis, secs = list(quasi_identifiers), list(secrets)
    cols = list(real.columns)
    _check_columns("real", real, qis + secs)
    _check_columns("synthetic", synthetic, cols)
    if holdout is not None:
        _check_columns("holdout", holdout, cols)
    if len(real) < 10 or len(synthetic) < 10:
        raise ConfigError("the audit needs at least 10 real and 10 synthetic records")
    warnings: list[str] = []
    extra = [c for c in synthetic.columns if c not in real.columns]
    if extra:
        warnings.append(f"{len(extra)} synthetic columns are not in the real data and were "
                        "ignored")
    enc = MixedEncoder(real, [synthetic] + ([holdout] if holdout is not None else []),
                       columns=cols, numeric_ranges=numeric_ranges)
    r = enc.encode(real, name="real")
    s = enc.encode(synthetic, name="synthetic")
    h = enc.encode(holdout, name="holdout") if holdout is not None else None
    n_t = min(n_attacks, r.n_rows, h.n_rows if h is not None else r.n_rows)
    t_idx = rng.choice(r.n_rows, size=n_t, replace=False)
    targets = r.take(t_idx)
    control = h.take(rng.choice(h.n_rows, size=n_t, replace=False)) if h is not None else None

    membership = _membership(r, s, h, targets, control, t_idx, n_t, rng, warnings)
    cols_a, cols_b = default_split(qis)
    link = linkability_risk(targets, s, control, cols_a=cols_a, cols_b=cols_b, rng=rng,
                            confidence=RISK_CONFIDENCE)
    so = singling_out_risk(r, s, h, n_attacks=n_attacks, rng=rng, confidence=RISK_CONFIDENCE)
    inf = inference_risk(targets, s, control, secrets=secs, rng=rng,
                         confidence=RISK_CONFIDENCE)
    rare = (qi_group_sizes(real, qis) == 1)[qi_group_ids(real, qis)]
    rare_h = None if holdout is None else \
        (qi_group_sizes(holdout, qis) == 1)[qi_group_ids(holdout, qis)]
    result = AuditResult(
        membership=membership, singling_out=so, linkability=link,
        linkability_columns=(tuple(cols_a), tuple(cols_b)), inference=inf,
        k_anonymity=syntactic_report(synthetic[cols], qis, secs),
        k_anonymity_real=syntactic_report(real, qis, secs),
        exact_copies=_exact_copies(r, s, h, rare, rare_h), outliers=_outliers(r, s, h, rng),
        meta={"n_real": len(real), "n_synthetic": len(synthetic),
              "n_holdout": None if holdout is None else len(holdout), "n_targets": n_t,
              "quasi_identifiers": qis, "secrets": secs, "columns": cols,
              "risk_confidence": RISK_CONFIDENCE, "membership_alpha": MEMBERSHIP_ALPHA,
              "numeric_scale_source": {
                  c: "public range" if c in (numeric_ranges or {}) else
                  "robust range of the real data" for c in enc.num_columns}},
        warnings=tuple(warnings), manifest=manifest)
    outcome = evaluate_policy(result, policy if policy is not None else Policy())
    logger.info("audit finished: policy %s", "passed" if outcome.passed else "failed")
    return dataclasses.replace(result, policy=outcome)

