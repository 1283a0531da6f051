"""Write an audit result as ``audit.json`` and a self-contained, confidential ``audit.html``.

The HTML page has no external resources (styles inline, charts as inline SVG drawn with
matplotlib), says CONFIDENTIAL on every page, and explains how to read each number. Both
pages are rendered before anything is written, then both files are written atomically: an
audit directory holds both new files or neither (an old pair is left as it was). The files are
private to their owner (mode 0600): they are computed on the real data without DP.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import jinja2
from matplotlib.figure import Figure

from dpsynth.audit.runner import AuditResult
from dpsynth.tabular.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["format_number", "format_risk", "render_audit_html", "risk_svg", "write_audit_report"]


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def format_number(x: Any) -> str:
    """A number as people read it in the report: 3 decimals for floats, integers as they are."""
    if isinstance(x, bool) or x is None:
        return "n/a" if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.3f}" if math.isfinite(x) else "n/a"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(format_number(v) for v in x) + "]"
    return str(x)


def format_risk(risk: Any) -> str:
    """The headline of one risk's JSON: ``0.031 [0.000, 0.091]``, or why there is no number."""
    if not isinstance(risk, dict):
        return "n/a"
    if risk.get("skipped"):
        return f"skipped: {risk.get('skipped_reason')}"
    if risk.get("undefined"):
        reason = str(risk.get("undefined_reason") or "")
        return reason if reason.startswith("undefined") else f"undefined: {reason}"
    if risk.get("value") is None:
        return "n/a"
    return f"{format_number(risk['value'])} {format_number(risk.get('ci') or [])}"


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE (external DTD URL)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


def _roc_svg(result: AuditResult) -> str | None:
    if not result.membership:
        return None
    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.add_subplot()
    for name, att in result.membership.items():
        ax.plot(att.roc_fpr, att.roc_tpr, label=f"{name} (AUC {att.auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="guessing")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("Membership inference ROC")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def _finite(x: Any, default: float = 0.0) -> float:
    """``x`` as a float, or ``default`` when it is missing or not finite."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else default


def risk_svg(js: dict[str, Any]) -> str:
    """Bar chart (inline SVG) of the singling-out, linkability and inference risks in ``js``."""
    fig = Figure(figsize=(5.0, 3.0))
    ax = fig.add_subplot()
    names = ["singling_out", "linkability", "inference"]
    vals, lo, hi, notes = [], [], [], []
    for n in names:
        risk = js[n]["risk"]
        v = _finite(risk.get("value"))
        ci = risk.get("ci") or [v, v]
        vals.append(v)
        notes.append("skipped" if risk.get("skipped") else
                     "undefined" if risk.get("undefined") else "")
        # Error bars cannot be negative: a CI end a rounding error past the value (risk 0,
        # lower bound 4e-19) or a missing end draws as no bar on that side.
        lo.append(max(0.0, v - _finite(ci[0], v)))
        hi.append(max(0.0, _finite(ci[1], v) - v))
    ax.bar(range(3), vals, yerr=[lo, hi], capsize=6, color="#4c72b0")
    for i, note in enumerate(notes):
        if note:
            ax.text(i, 0.05, note, ha="center", rotation=90, color="#a40000")
    ax.set_xticks(range(3), ["singling out", "linkability", "inference"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("residual risk")
    ax.set_title("WP29 risks with confidence intervals")
    fig.tight_layout()
    return _svg(fig)


_TEMPLATE = jinja2.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>CONFIDENTIAL dpsynth audit</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;color:#222}
.banner{background:#a40000;color:#fff;padding:.6rem 1rem;font-weight:bold;position:sticky;top:0}
@media print{.banner{position:fixed;top:0;width:100%}}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #bbb;padding:.25rem .5rem}
th{background:#eee;text-align:left}.fail{color:#a40000;font-weight:bold}.pass{color:#1a7f37}
.warn{background:#fff4d6;padding:.3rem .6rem;margin:.2rem 0}.note{color:#555;font-size:.92rem}
</style></head><body>
<div class="banner">CONFIDENTIAL &mdash; computed from real data &mdash; NOT differentially
private &mdash; NOT for the release bundle</div>
<h1>Privacy audit of a synthetic release</h1>
<p><strong>{{ js.disclaimer }}</strong></p>
<h2>Policy: <span class="{{ 'pass' if js.policy.passed else 'fail' }}">{{
 'PASSED' if js.policy.passed else 'FAILED' }}</span> ({{ js.policy.name }})</h2>
{% if js.policy.failures %}<ul>{% for f in js.policy.failures %}<li class="fail">{{ f }}</li>
{% endfor %}</ul>{% endif %}
{% if js.skipped %}<h3>Measures not run</h3><ul>{% for k, why in js.skipped.items() %}
<li>{{ k }}: {{ why }}</li>{% endfor %}</ul>{% endif %}
{% if js.policy.skipped %}<p class="note">Not checked: {{ js.policy.skipped|join('; ') }}</p>
{% endif %}
<h2>Attacker knowledge audited</h2>
<table><tr><th>quasi-identifiers</th><td>{{ js.meta.quasi_identifiers|join(', ') }}</td></tr>
<tr><th>secrets</th><td>{{ js.meta.secrets|join(', ') }}</td></tr>
<tr><th>linkability column sets</th><td>A: {{ (js.linkability.columns_a or [])|join(', ') }}<br>
B: {{ (js.linkability.columns_b or [])|join(', ') }}</td></tr>
<tr><th>records</th><td>real {{ js.meta.n_real }}, synthetic {{ js.meta.n_synthetic }},
holdout {{ js.meta.n_holdout if js.meta.n_holdout is not none else 'none' }};
{{ js.meta.n_targets }} targets per attack</td></tr></table>
<h2>Membership inference</h2>
<p class="note">Can an attacker tell whether a person's record was used to train the
generator? AUC 0.5 means no better than a coin; 1.0 means always. The interval is a DeLong
interval at {{ '%.1f'|format(100 * js.membership.confidence) }}%. The empirical epsilon is a
lower bound with failure probability {{ js.meta.membership_alpha }}: if it exceeds the
release's claimed epsilon, the claim is refuted; if it is 0, the attacks found no evidence
(which does not prove privacy). TPR at low FPR shows whether a few people are exposed
with confidence even when the AUC is close to 0.5.</p>
{% if js.membership.auc is none %}<p class="warn">Not run: {{
 js.membership.warnings|join('; ') }}</p>{% else %}
<table><tr><th>attack</th><th>AUC</th><th>interval</th><th>TPR @ FPR 0.1%</th>
<th>TPR @ FPR 1%</th><th>&epsilon; lower bound</th><th>GDP &mu; lower bound</th></tr>
{% for name, a in js.membership.attacks.items() %}<tr><td>{{ name }}</td>
<td>{{ '%.3f'|format(a.auc) }}</td><td>[{{ '%.3f'|format(a.auc_ci[0]) }}, {{
 '%.3f'|format(a.auc_ci[1]) }}]</td><td>{{ '%.3f'|format(a['tpr_at_fpr_0.001']) }}</td>
<td>{{ '%.3f'|format(a['tpr_at_fpr_0.01']) }}</td><td>{{ '%.3f'|format(a.epsilon_lower_bound)
 }}</td><td>{{ '%.3f'|format(a.gdp_mu_lower_bound) }}</td></tr>{% endfor %}</table>
{{ roc_svg|safe }}{% endif %}
<h2>WP29 criteria (Article 29 Working Party, Opinion 05/2014)</h2>
<p class="note">Each risk follows Giomi et al. (PoPETs 2023): the attack on training
records, a naive baseline, and a control attack on held-out records. Residual risk =
(attack rate &minus; control rate) / (1 &minus; control rate): the success that only the
training records' presence explains. Intervals are Wilson intervals at
{{ '%.0f'|format(100 * js.meta.risk_confidence) }}%, combined at their least favourable
ends. If the attack is no better than the baseline, a low risk is weak evidence.</p>
{{ risk_svg|safe }}
<table><tr><th>criterion</th><th>risk [interval]</th><th>attack</th><th>baseline</th>
<th>control</th><th>n</th></tr>
{% for key, label in [('singling_out','singling out: isolating one person'),
 ('linkability','linkability: linking two records of one person'),
 ('inference','inference: deducing a secret attribute')] %}{% set r = js[key].risk %}<tr>
<td>{{ label }}</td><td>{{ fmt_risk(r) }}</td><td>{{ fmt(r.attack_rate) }}</td>
<td>{{ fmt(r.baseline_rate) }}</td><td>{{ fmt(r.control_rate) }}</td>
<td>{{ r.n_attacks if r.n_attacks is defined else 'n/a' }}</td></tr>{% endfor %}
{% if js.linkability.any_tie %}{% set r = js.linkability.any_tie %}<tr><td>linkability, any tie
(conservative secondary)</td><td>{{ fmt_risk(r) }}</td><td>{{ fmt(r.attack_rate) }}</td>
<td>{{ fmt(r.baseline_rate) }}</td><td>{{ fmt(r.control_rate) }}</td><td>{{ r.n_attacks }}</td></tr>
{% endif %}</table>
{% for key in ['singling_out','linkability','inference'] %}{% for w in js[key].risk.warnings
 %}<p class="warn">{{ key }}: {{ w }}</p>{% endfor %}{% endfor %}
<h2>Exact copies and outliers</h2>
<p class="note">Real records reproduced verbatim in the synthetic data. "Rare" records are
unique on the quasi-identifiers in the real data; copying them is the clearest leak.
Compare with the holdout: identical rows also arise by chance in small domains.
<code>closer_to_real_share</code> is the share of synthetic records nearer to a training record
than to any holdout record (about 0.5 when nothing is copied); the <code>near</code> share is
the same among the quarter of synthetic records nearest the real records, where copies and
lightly edited copies show first. Their intervals come from random relabellings of the
pooled training and holdout records.</p>
<table>{% for k, v in js.exact_copies.items() %}<tr><th>{{ k }}</th><td>{{ fmt(v) }}</td></tr>
{% endfor %}{% for k, v in js.outliers.items() %}<tr><th>outliers: {{ k }}</th><td>{{ fmt(v) }}
</td></tr>{% endfor %}</table>
<h2>k-anonymity family (informational only)</h2>
<p class="note">Computed on the synthetic table for the quasi-identifiers (ARX definitions).
These numbers certify nothing for synthetic data: there is no one-to-one mapping between
synthetic rows and people, a generator can copy an outlier into a large group, and they
ignore background knowledge. A table with k &ge; 10 can still fail membership inference.</p>
{% if js.k_anonymity.skipped %}<p class="warn">Not run: {{ js.k_anonymity.skipped_reason }}</p>
{% else %}<table><tr><th>k</th><td>{{ js.k_anonymity.k }}</td></tr>
<tr><th>share unique on QIs</th><td>{{ fmt(js.k_anonymity.unique_share) }}</td></tr>
{% for s, v in js.k_anonymity.l_diversity_distinct.items() %}<tr><th>{{ s }}: distinct l /
entropy l / t</th><td>{{ v }} / {{ fmt(js.k_anonymity.l_diversity_entropy[s]) }} /
{{ fmt(js.k_anonymity.t_closeness[s]) }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Warnings</h2>{% for w in js.warnings %}<p class="warn">{{ w }}</p>{% else %}
<p>None.</p>{% endfor %}
<h2>How to use this report</h2>
<p class="note">CNIL (letter of 13 February 2023) accepts attack-based evaluation of the
three WP29 criteria, asks that anonymity be judged case by case for each generated dataset,
with attention to outliers, and leaves the decision to the controller; it sets no
thresholds. Keep this report with the controller's records. Do not publish it: its numbers
are computed from real data and can themselves leak.</p>
<div class="banner">CONFIDENTIAL &mdash; not differentially private &mdash; not for the
release bundle</div>
</body></html>
""", autoescape=True)


def render_audit_html(result: AuditResult) -> str:
    """The self-contained confidential HTML page of ``result``."""
    js = _clean(result.to_json())
    return str(_TEMPLATE.render(js=js, roc_svg=_roc_svg(result), risk_svg=risk_svg(js),
                                fmt=format_number, fmt_risk=format_risk))


def write_audit_report(result: AuditResult, out_dir: Path) -> None:
    """Write ``audit.json`` and ``audit.html`` into ``out_dir`` (created, mode 0700, if needed).

    Both are rendered first; if writing the second fails, the first is put back as it was,
    so the directory never holds a new ``audit.json`` beside an old ``audit.html``.
    """
    out = Path(out_dir)
    js = _clean(result.to_json())
    pages = {"audit.json": json.dumps(js, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
             "audit.html": render_audit_html(result)}
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    before = {name: (out / name).read_bytes() if (out / name).is_file() else None for name in pages}
    written: list[str] = []
    try:
        for name, text in pages.items():
            write_text_atomic(out / name, text)
            written.append(name)
    except BaseException:
        for name in written:
            old = before[name]
            if old is None:
                (out / name).unlink(missing_ok=True)
            else:
                write_bytes_atomic(out / name, old)
        raise
