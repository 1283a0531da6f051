"""The ``dpsynth ledger`` commands: show a lifetime ledger, and raise its cap explicitly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import ZCDP, ApproxDP, Budget, PureDP, to_rho
from dpsynth.privacy.events import epsilon_of
from dpsynth.privacy.ledger import LedgerState, budget_text, raise_cap, read_state
from dpsynth.privacy.rdp import DEFAULT_ORDERS, zcdp_room

__all__ = ["ledger_app", "register", "summary"]

ledger_app = typer.Typer(help="Inspect a lifetime budget ledger, or raise its cap explicitly.",
                         no_args_is_help=True)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _remaining_rho(cap: Budget, counted: list[Any]) -> float:
    rho = [ev.rho for ev in counted]
    if all(math.isfinite(r) for r in rho):
        return max(0.0, to_rho(cap) - math.fsum(rho))
    if isinstance(cap, ApproxDP):
        from dpsynth.privacy.events import rdp_of

        return zcdp_room(DEFAULT_ORDERS, rdp_of(counted), cap.epsilon, cap.delta)
    return 0.0


def summary(state: LedgerState) -> dict[str, Any]:
    """A JSON-ready account of a ledger: cap and its history, runs, totals, what remains."""
    counted = state.counted()
    cap = state.cap
    delta = cap.delta if isinstance(cap, ApproxDP) else None
    runs = []
    for r in state.runs:
        ev = r.counted()
        runs.append({
            "run": r.run, "label": r.label, "status": r.status,
            "time": r.time.isoformat(), "ended": None if r.ended is None else r.ended.isoformat(),
            "budget": None if r.budget is None else budget_text(r.budget),
            "reserved_rho": r.reserved_rho, "steps": len(r.steps),
            "spent_rho": _num(r.spent_rho), "counted_rho": _num(math.fsum(e.rho for e in ev)),
            "explanation": r.explain(),
        })
    spent_rho = math.fsum(ev.rho for ev in counted)
    out: dict[str, Any] = {
        "ledger": str(state.path),
        "format": 1 if state.legacy and not state.caps else 2,
        "cap": None if cap is None else {**cap.to_json(), "text": budget_text(cap),
                                         "rho": to_rho(cap)},
        "cap_history": [{"time": c.time.isoformat(), "cap": budget_text(c.cap),
                         "previous": None if c.previous is None else budget_text(c.previous),
                         "by": c.by, "reason": c.reason} for c in state.caps],
        "runs": runs,
        "counted_rho": _num(spent_rho),
        "counted_epsilon": (epsilon_of(counted, delta)[0] if delta is not None else None),
        "delta": delta,
        "remaining_rho": None if cap is None else _remaining_rho(cap, counted),
        "open_reservations": [r.run for r in state.runs if r.status == "reserved"],
    }
    if cap is None:
        out["note"] = ("no lifetime cap stored (a format-1 ledger): the next fit/release with "
                       "this ledger stores one, or set it with `dpsynth ledger raise-cap`")
    return out


def _human(s: dict[str, Any]) -> str:
    lines = [f"ledger {s['ledger']} (format {s['format']})"]
    lines.append(f"lifetime cap: {s['cap']['text'] if s['cap'] else 'none stored'}")
    for c in s["cap_history"]:
        prev = f" (was {c['previous']})" if c["previous"] else ""
        lines.append(f"  {c['time']}  {c['cap']}{prev}  by {c['by']}: {c['reason']}")
    lines.append(f"runs: {len(s['runs'])}")
    for r in s["runs"]:
        counted = "inf" if r["counted_rho"] is None else f"{r['counted_rho']:.6g}"
        lines.append(f"  {r['time']}  {r['label'] or '-'}  [{r['status']}]  budget "
                     f"{r['budget'] or '-'}  steps {r['steps']}  counted rho={counted}")
        lines.append(f"      {r['explanation']}")
    spent = "inf" if s["counted_rho"] is None else f"{s['counted_rho']:.6g}"
    line = f"spent (counted): rho={spent}"
    if s["counted_epsilon"] is not None:
        line += f", epsilon={s['counted_epsilon']:.6g} at delta={s['delta']:g}"
    lines.append(line)
    if s["remaining_rho"] is not None:
        lines.append(f"remaining under the cap: rho={s['remaining_rho']:.6g}")
    if s.get("note"):
        lines.append(s["note"])
    return "\n".join(lines)


@ledger_app.command("show")
def show_cmd(
    ledger: Path = typer.Argument(..., help="The ledger file."),
    as_json: bool = typer.Option(False, "--json", help="Print the account as JSON on stdout."),
) -> None:
    """What was spent, when, by which run or release; reservations; the cap; what remains."""
    s = summary(read_state(ledger))
    if as_json:
        typer.echo(json.dumps(s, indent=2, allow_nan=False))
    else:
        typer.echo(_human(s))


@ledger_app.command("raise-cap")
def raise_cap_cmd(
    ledger: Path = typer.Argument(..., help="The ledger file."),
    epsilon: float | None = typer.Option(None, "--epsilon", help="New lifetime epsilon."),
    delta: float | None = typer.Option(
        None, "--delta", help="Delta of the new cap (default: the stored cap's delta)."),
    rho: float | None = typer.Option(None, "--rho", help="New lifetime cap as rho-zCDP."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    by: str | None = typer.Option(None, "--by", help="Who (default: the login name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the recorded change as JSON."),
) -> None:
    """Raise the lifetime cap explicitly; who, when and why are recorded in the ledger."""
    if (epsilon is None) == (rho is None):
        raise ConfigError("raise-cap needs exactly one of --epsilon or --rho")
    new: Budget
    if rho is not None:
        new = ZCDP(rho)
    else:
        assert epsilon is not None
        if delta is None:
            stored = read_state(ledger).cap
            if isinstance(stored, PureDP):
                new = PureDP(epsilon)
            elif not isinstance(stored, ApproxDP):
                raise ConfigError(f"ledger {ledger} has no stored delta (cap "
                                  f"{budget_text(stored) if stored else 'none'}); give --delta")
            else:
                delta = stored.delta
        if delta is not None:
            new = ApproxDP(epsilon, delta)
    change = raise_cap(ledger, new, reason=reason, by=by)
    out = {"ledger": str(ledger), "cap": budget_text(change.cap),
           "previous": None if change.previous is None else budget_text(change.previous),
           "by": change.by, "reason": change.reason, "time": change.time.isoformat()}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(f"ledger {ledger}: lifetime cap {out['previous']} -> {out['cap']} "
                   f"(by {change.by}: {change.reason})", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` command group to ``app``."""
    app.add_typer(ledger_app, name="ledger")
