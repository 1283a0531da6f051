"""Run the whole audit of one synthetic release.

:func:`run_audit` encodes real, synthetic and (optional) holdout records once, runs the
membership attacks, the three WP29 attacks, the syntactic metrics and the exact-copy scan,
and checks the policy. Measures whose roles are missing (no quasi-identifiers, no secrets)
are skipped, each with the flag that enables it, and the rest still run. Its result is
computed from the real data: it is confidential and not differentially private (DESIGN §2
rule 7); it must never go into a release bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dpsynth.audit.closeness import closer_to_real
from dpsynth.audit.distance import EncodedTable, MixedEncoder, nearest_neighbors, top_outliers
from dpsynth.audit.inference import InferenceResult, NumericMatch, check_numeric_match, inference_risk
from dpsynth.audit.kanonymity import qi_group_ids, qi_group_sizes, syntactic_report
from dpsynth.audit.linkage import LinkabilityResult, default_split, linkability_attack
from dpsynth.audit.membership import MembershipAttackResult, distance_mia, domias_mia
from dpsynth.audit.policy import Policy, evaluate_policy
from dpsynth.audit.result import DISCLAIMER, MEMBERSHIP_ALPHA, RISK_CONFIDENCE, AuditResult
from dpsynth.audit.risk import ESTIMATORS, Estimator
from dpsynth.audit.singling_out import SinglingOutResult, singling_out_risk
from dpsynth.errors import ConfigError, SchemaError

__all__ = ["DISCLAIMER", "MEMBERSHIP_ALPHA", "RISK_CONFIDENCE", "AuditOptions", "AuditProgress",
           "AuditResult", "closer_to_real", "run_audit"]

logger = logging.getLogger(__name__)

N_OUTLIERS = 10
#: Level of the one-sided test behind the rare exact-copy allowance.
RARE_COPY_ALPHA = 1e-2


class AuditProgress(Protocol):
    """Receives the audit's steps as they run (the CLI draws them as progress bars)."""

    def begin(self, steps: Sequence[str]) -> None:
        """The steps that will run, in order."""
        ...

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A context that spans one step."""
        ...


@dataclass(frozen=True, kw_only=True)
class AuditOptions:
    """Settings of the attacks beyond the roles (all optional).

    Attributes:
        link_columns: The linkability attacker's two column sets ``(A, B)``; default the
            quasi-identifiers cut in two, in order.
        singling_out_columns: Columns the singling-out predicates may use (default all).
        n_neighbors: Neighbours looked up per linkability half.
        confidence: Two-sided level of the WP29 risk intervals.
        ci: Risk estimator: ``"conservative"`` or Anonymeter's ``"wilson-centre"``.
        ordinal_orders: Public order of ordinal columns (t-closeness in schema order).
        numeric_match: When a guess of a numeric secret is right: ``"relative"`` (within 5%
            of the guess, Anonymeter's rule) or ``"scale"`` (within 5% of the column's range).
    """

    link_columns: tuple[Sequence[str], Sequence[str]] | None = None
    singling_out_columns: Sequence[str] | None = None
    n_neighbors: int = 1
    confidence: float = RISK_CONFIDENCE
    ci: Estimator = "conservative"
    ordinal_orders: Mapping[str, Sequence[object]] | None = None
    numeric_match: NumericMatch = "relative"

    def __post_init__(self) -> None:
        check_numeric_match(self.numeric_match)
        if self.ci not in ESTIMATORS:
            raise ConfigError(f"ci ({self.ci!r}) must be one of {sorted(ESTIMATORS)}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence ({self.confidence}) must lie in [0.5, 1)")


def _check_columns(name: str, frame: pd.DataFrame, cols: Sequence[str]) -> None:
    if frame.columns.has_duplicates:
        raise SchemaError(f"the {name} data has duplicate column names")
    for c in cols:
        if c not in frame.columns:
            raise SchemaError(f"column {c!r} is missing from the {name} data")


def _exact_copies(r: EncodedTable, s: EncodedTable, h: EncodedTable | None,
                  rare: np.ndarray | None, rare_h: np.ndarray | None) -> dict[str, int | float]:
    """Verbatim copies of real records, with the holdout's chance-collision rate as control.

    ``rare_allowed`` is the number of rare copies that chance explains, given how many rare
    holdout records the synthetic data reproduces (:func:`rare_copy_allowance`). Without a
    holdout it is 0. Without quasi-identifiers (``rare`` None) rare records are not counted.
    """
    syn_keys = s.row_keys()
    copied = np.isin(r.row_keys(), syn_keys)
    syn_from_real = int(np.isin(syn_keys, r.row_keys()).sum())
    out: dict[str, int | float] = {
        "real_records_copied": int(copied.sum()),
        "real_share_copied": float(copied.mean()) if copied.size else 0.0,
        "synthetic_share_copies": syn_from_real / max(s.n_rows, 1),
    }
    if rare is not None:
        out.update({"n_rare": int(rare.sum()), "rare": int((copied & rare).sum()),
                    "rare_allowed": 0.0})
    if h is not None:
        h_copied = np.isin(h.row_keys(), syn_keys)
        out["holdout_records_copied"] = int(h_copied.sum())
        out["holdout_share_copied"] = float(h_copied.mean()) if h_copied.size else 0.0
        if rare is not None and rare_h is not None:
            out["holdout_n_rare"] = int(rare_h.sum())
            out["holdout_rare"] = int((h_copied & rare_h).sum())
            out["rare_allowed"] = float(rare_copy_allowance(
                int(out["holdout_rare"]), int(rare_h.sum()), int(rare.sum())))
    return out


def rare_copy_allowance(holdout_copies: int, holdout_rare: int, real_rare: int,
                        alpha: float = RARE_COPY_ALPHA) -> int:
    """The most rare real records that may appear verbatim before chance stops explaining it.

    Under the null (the release reproduces rare training records no more often than rare
    holdout records), given ``k + holdout_copies`` copies in all, the real side's share ``k``
    is binomial with probability ``real_rare / (real_rare + holdout_rare)``. The allowance is
    the largest ``k`` whose one-sided p-value is at least ``alpha`` (0 without rare records).
    """
    if real_rare <= 0 or holdout_rare <= 0:
        return 0
    from scipy.stats import binom

    k = np.arange(1, real_rare + 1)
    p_values = binom.sf(k - 1, k + holdout_copies, real_rare / (real_rare + holdout_rare))
    return int(np.sum(p_values >= alpha))


def _outliers(r: EncodedTable, s: EncodedTable, h: EncodedTable | None) -> dict[str, Any]:
    n = min(N_OUTLIERS, r.n_rows - 1)
    if n < 1 or r.n_rows < 7:
        return {"n_targets": 0}
    idx = top_outliers(r, n, k=5)
    _, d = nearest_neighbors(r.take(idx), s, k=1)
    out: dict[str, Any] = {"n_targets": int(idx.size),
                           "exact_copies": int((d[:, 0] == 0.0).sum()),
                           "median_distance_to_synthetic": float(np.median(d))}
    if h is not None and h.n_rows >= 7:
        hidx = top_outliers(h, min(N_OUTLIERS, h.n_rows - 1), k=5)
        _, dh = nearest_neighbors(h.take(hidx), s, k=1)
        out["holdout_median_distance_to_synthetic"] = float(np.median(dh))
        out["holdout_exact_copies"] = int((dh[:, 0] == 0.0).sum())
    return out


def _membership(r: EncodedTable, s: EncodedTable, h: EncodedTable | None, targets: EncodedTable,
                control: EncodedTable | None, t_idx: np.ndarray, n_t: int,
                rng: np.random.Generator, warnings: list[str], step: _Step
                ) -> dict[str, MembershipAttackResult]:
    """The membership attacks of :func:`run_audit` (skipped, with a warning, without enough holdout)."""
    membership: dict[str, MembershipAttackResult] = {}
    if h is None or control is None:
        warnings.append("membership: no holdout given, so there are no non-members to "
                        "compare with; membership inference was not run (pass --holdout)")
    elif n_t < 8:
        warnings.append("membership: fewer than 8 holdout records; membership inference was "
                        "not run")
    else:
        with step("membership: distance attack"):
            membership["distance"] = distance_mia(targets, control, s, rng=rng,
                                                  alpha=MEMBERSHIP_ALPHA)
        if h.n_rows >= 16:
            with step("membership: DOMIAS attack"):
                perm = rng.permutation(h.n_rows)
                ref, pool = perm[: h.n_rows // 2], perm[h.n_rows // 2:]
                m = min(n_t, pool.size)
                membership["domias"] = domias_mia(
                    r.take(t_idx[:m]), h.take(pool[:m]), s, h.take(ref), rng=rng,
                    alpha=MEMBERSHIP_ALPHA)
        else:
            warnings.append("membership: fewer than 16 holdout records; DOMIAS was not run")
    return membership


class _Step(Protocol):
    def __call__(self, name: str) -> contextlib.AbstractContextManager[None]: ...


def _stepper(progress: AuditProgress | None) -> _Step:
    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        logger.info("audit step: %s", name)
        if progress is None:
            yield
        else:
            with progress.step(name):
                yield
    return step


def _skips(qis: Sequence[str], secs: Sequence[str], link: tuple[Sequence[str], Sequence[str]] | None
           ) -> dict[str, str]:
    """Measures that cannot run with these roles, each with the flag that enables it."""
    out: dict[str, str] = {}
    if link is None and len(qis) < 2:
        out["linkability"] = ("needs two column sets: mark at least 2 columns role: "
                              "quasi_identifier, or pass --qi twice, or --link-a/--link-b")
    if not secs:
        out["inference"] = "needs a secret column: mark role: sensitive or pass --secret"
    if not qis:
        out["k_anonymity"] = "needs quasi-identifiers: mark role: quasi_identifier or pass --qi"
        out["exact_copies"] = ("rare records are defined on the quasi-identifiers: mark role: "
                               "quasi_identifier or pass --qi")
    return out


def _steps(skipped: Mapping[str, str], has_holdout: bool) -> list[str]:
    steps = ["encode records"]
    if has_holdout:
        steps += ["membership: distance attack", "membership: DOMIAS attack"]
    steps += [s for k, s in (("singling_out", "singling out"), ("linkability", "linkability"),
                             ("inference", "inference")) if k not in skipped]
    return [*steps, "k-anonymity family", "exact copies and outliers"]


def _wp29(r: EncodedTable, s: EncodedTable, h: EncodedTable | None, targets: EncodedTable,
          control: EncodedTable | None, enc: MixedEncoder, *, qis: Sequence[str],
          secs: Sequence[str], skipped: Mapping[str, str], opts: AuditOptions,
          n_attacks: int, rng: np.random.Generator, step: _Step
          ) -> tuple[SinglingOutResult, LinkabilityResult | None, InferenceResult | None]:
    """The three WP29 attacks (linkability and inference only when their roles exist)."""
    conf, est = opts.confidence, opts.ci
    with step("singling out"):
        so = singling_out_risk(r, s, h, n_attacks=n_attacks, rng=rng, confidence=conf, ci=est,
                               columns=opts.singling_out_columns)
    link = inf = None
    if "linkability" not in skipped:
        cols_a, cols_b = opts.link_columns or default_split(qis)
        with step("linkability"):
            link = linkability_attack(targets, s, control, cols_a=cols_a, cols_b=cols_b,
                                      rng=rng, n_neighbors=opts.n_neighbors, confidence=conf,
                                      ci=est)
    if "inference" not in skipped:
        labels = {c: enc.categories(c) for c in secs if c in enc.cat_columns}
        with step("inference"):
            inf = inference_risk(targets, s, control, secrets=secs, rng=rng, confidence=conf,
                                 ci=est, value_labels=labels, numeric_match=opts.numeric_match)
    return so, link, inf


def _rare(frame: pd.DataFrame | None, qis: Sequence[str]) -> np.ndarray | None:
    if frame is None or not qis:
        return None
    return np.asarray((qi_group_sizes(frame, qis) == 1)[qi_group_ids(frame, qis)])


def _syntactic(df: pd.DataFrame, qis: list[str], secs: list[str], opts: AuditOptions,
               warnings: list[str], name: str) -> Any:
    """The k-anonymity family, ordinal secrets in schema order; values outside a declared order
    (rare real values a release maps to ``other``) fall back to the equal distance, with a warning."""
    try:
        return syntactic_report(df, qis, secs, orders=opts.ordinal_orders)
    except SchemaError:
        warnings.append(f"t-closeness of the {name} data: an ordinal secret holds values outside "
                        "its schema order, so the equal distance was used for it")
        return syntactic_report(df, qis, secs, orders=None)


def run_audit(real: pd.DataFrame, synthetic: pd.DataFrame, *, holdout: pd.DataFrame | None,
              quasi_identifiers: Sequence[str], secrets: Sequence[str],
              numeric_ranges: Mapping[str, tuple[float, float]] | None = None,
              policy: Policy | None = None, manifest: Mapping[str, Any] | None = None,
              n_attacks: int = 500, rng: np.random.Generator,
              options: AuditOptions | None = None,
              progress: AuditProgress | None = None) -> AuditResult:
    """Audit a synthetic release against the real training data (confidential, not DP).

    Args:
        real: The real records the generator was trained on. Its columns are audited.
        synthetic: The synthetic release; it must hold every column of ``real``.
        holdout: Real records of the same population NOT used for training (the control and
            the non-members). Without it, membership attacks are skipped and the WP29 risks
            are reported without control, with warnings.
        quasi_identifiers: Columns an attacker may know (linkability splits them in two;
            k-anonymity groups on them). Empty: linkability, k-anonymity and the rare-copy
            count are skipped (listed in ``skipped``), everything else runs.
        secrets: Sensitive columns (inference targets, l-diversity, t-closeness). Empty:
            inference is skipped.
        numeric_ranges: Public ``(lo, hi)`` of numeric columns, the distance scales.
        policy: Policy to check; default :class:`Policy` (the built-in default policy).
        manifest: A release manifest dict, for the epsilon/delta caps.
        n_attacks: Targets (and predicates) per attack.
        rng: Randomness for sampling targets and for the attacks.
        options: Column sets, estimator and confidence of the attacks.
        progress: Receives each step as it runs (progress bars).

    Returns:
        The audit result, with the policy outcome.
    """
    opts = options or AuditOptions()
    if n_attacks < 10:
        raise ConfigError(f"n_attacks ({n_attacks}) must be >= 10")
    qis, secs = list(quasi_identifiers), list(secrets)
    cols = list(real.columns)
    link_cols = [c for side in (opts.link_columns or ((), ())) for c in side]
    _check_columns("real", real, qis + secs + link_cols + list(opts.singling_out_columns or []))
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
    skipped = _skips(qis, secs, opts.link_columns)
    if holdout is None:
        skipped["closer_to_real"] = "needs non-members to compare with: pass --holdout"
    if progress is not None:
        progress.begin(_steps(skipped, holdout is not None))
    step = _stepper(progress)
    with step("encode records"):
        enc = MixedEncoder(real, [synthetic] + ([holdout] if holdout is not None else []),
                           columns=cols, numeric_ranges=numeric_ranges)
        r, s = enc.encode(real, name="real"), enc.encode(synthetic, name="synthetic")
        h = enc.encode(holdout, name="holdout") if holdout is not None else None
    n_t = min(n_attacks, r.n_rows, h.n_rows if h is not None else r.n_rows)
    t_idx = rng.choice(r.n_rows, size=n_t, replace=False)
    targets = r.take(t_idx)
    control = h.take(rng.choice(h.n_rows, size=n_t, replace=False)) if h is not None else None

    membership = _membership(r, s, h, targets, control, t_idx, n_t, rng, warnings, step)
    so, link, inf = _wp29(r, s, h, targets, control, enc, qis=qis, secs=secs, skipped=skipped,
                          opts=opts, n_attacks=n_attacks, rng=rng, step=step)
    with step("k-anonymity family"):
        kan = kan_real = None
        if qis:
            kan = _syntactic(synthetic[cols], qis, secs, opts, warnings, "synthetic")
            kan_real = _syntactic(real, qis, secs, opts, warnings, "real")
    with step("exact copies and outliers"):
        copies = _exact_copies(r, s, h, _rare(real, qis), _rare(holdout, qis))
        if h is not None:
            copies.update(closer_to_real(r, s, h, rng=rng))
        outliers = _outliers(r, s, h)
    result = AuditResult(
        membership=membership, singling_out=so, linkability=link, inference=inf,
        k_anonymity=kan, k_anonymity_real=kan_real, exact_copies=copies, outliers=outliers,
        meta=_meta(real, synthetic, holdout, n_t, qis, secs, cols, opts, enc, numeric_ranges),
        warnings=tuple(warnings), manifest=manifest, skipped=skipped)
    outcome = evaluate_policy(result, policy if policy is not None else Policy())
    logger.info("audit finished: policy %s", "passed" if outcome.passed else "failed")
    return dataclasses.replace(result, policy=outcome)


def _meta(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, n_t: int,
          qis: list[str], secs: list[str], cols: list[str], opts: AuditOptions,
          enc: MixedEncoder, numeric_ranges: Mapping[str, tuple[float, float]] | None
          ) -> dict[str, Any]:
    return {"n_real": len(real), "n_synthetic": len(synthetic),
            "n_holdout": None if holdout is None else len(holdout), "n_targets": n_t,
            "quasi_identifiers": qis, "secrets": secs, "columns": cols,
            "risk_confidence": opts.confidence, "risk_estimator": opts.ci, "numeric_match": opts.numeric_match,
            "membership_alpha": MEMBERSHIP_ALPHA,
            "numeric_scale_source": {
                c: "public range" if c in (numeric_ranges or {}) else
                "robust range of the real data" for c in enc.num_columns}}
