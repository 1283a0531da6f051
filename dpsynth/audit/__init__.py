"""Audit of synthetic releases: evidence of privacy risk, computed from real data.

Everything this package produces is CONFIDENTIAL and NOT differentially private: it reads
the real records (DESIGN §2 rule 7). Use :func:`run_audit` and :func:`write_audit_report`.
"""

from __future__ import annotations

from dpsynth.audit.policy import Policy, PolicyOutcome, evaluate_policy, load_policy
from dpsynth.audit.report import write_audit_report
from dpsynth.audit.runner import DISCLAIMER, AuditResult, run_audit

__all__ = [
    "DISCLAIMER",
    "AuditResult",
    "Policy",
    "PolicyOutcome",
    "evaluate_policy",
    "load_policy",
    "run_audit",
    "write_audit_report",
]
