"""Reports: the public, differentially private report of a release bundle.

The confidential evaluation (real against synthetic) lives in :mod:`dpsynth.evaluation.evaluate` and is
never written into a bundle.
"""

from __future__ import annotations

from dpsynth.report.public import build_public_report, render_public_html

__all__ = ["build_public_report", "render_public_html"]
