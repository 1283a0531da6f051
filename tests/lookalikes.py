"""Lookalike fixtures: small made-up tables shaped like real open data, from a fixed seed.

Nothing here is copied from real data: every value is drawn from simple distributions chosen
to reproduce the *shape* problems of public tables (hourly airport weather, pet licences) —
zero-inflated and capped numbers, a 10-degree step, ISO timestamps with ``Z``, booleans
spelled ``YES``/``NO`` and ``Yes``/``No``, null tokens, dates. See tests/data/README.md.
Run ``python tests/lookalikes.py DIR`` to write them as CSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["pets_like", "weather_like"]

_VISIB = np.array([0.06, 0.12, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9])


def _fmt(values: np.ndarray, decimals: int) -> list[str]:
    return [f"{v:.{decimals}f}" for v in values]


def weather_like(n: int = 6000, seed: int = 20261202) -> pd.DataFrame:
    """Hourly weather at three airports, as CSV text (every column a string or None).

    ``precip`` is 0 in ~93% of rows (else 0.01-1.5, two decimals), ``visib`` is exactly 10
    (the instrument's cap) in ~83% (else one of 16 lower readings), ``wind_dir`` is a multiple
    of 10 in 0-360 (``NA`` in ~3%), ``time_hour`` is ISO with ``Z``, ``freezing`` is YES/NO.
    """
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, 365 * 24, n)
    time = pd.Timestamp("2013-01-01") + pd.to_timedelta(hours, unit="h")
    season = np.cos(2 * np.pi * (hours / (365 * 24) - 0.55))
    temp = np.round(55 + 25 * season + rng.normal(0, 8, n), 2)
    wet = rng.random(n) < 0.07
    precip = np.where(wet, np.round(np.clip(rng.exponential(0.12, n), 0.01, 1.5), 2), 0.0)
    clear = rng.random(n) < 0.89
    visib = np.where(clear & ~wet, 10.0, rng.choice(_VISIB, n))
    wind = np.round(rng.gamma(2.5, 4.2, n), 2)
    wind_dir = (np.round(rng.vonmises(np.pi / 2, 0.8, n) / (2 * np.pi) * 36) % 36 * 10).astype(int)
    dir_text = np.where(rng.random(n) < 0.03, "NA", wind_dir.astype(str))
    return pd.DataFrame({
        "origin": rng.choice(["EWR", "JFK", "LGA"], n, p=[0.34, 0.33, 0.33]),
        "temp": _fmt(temp, 2),
        "wind_dir": dir_text,
        "wind_speed": _fmt(wind, 2),
        "precip": [f"{v:g}" if v == 0 else f"{v:.2f}" for v in precip],
        "visib": [f"{v:g}" for v in visib],
        "time_hour": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "freezing": np.where(temp < 32, "YES", "NO"),
    }, dtype=object)


def pets_like(n: int = 4000, seed: int = 20261203) -> pd.DataFrame:
    """Pet licences, as CSV text: issue dates (``2018-03-14``), species, Yes/No flags, ZIP codes."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 4 * 365, n)
    issued = pd.Timestamp("2015-01-01") + pd.to_timedelta(days, unit="D")
    species = rng.choice(["Dog", "Cat", "Goat"], n, p=[0.64, 0.35, 0.01])
    neutered = rng.random(n) < np.where(species == "Cat", 0.9, 0.7)
    return pd.DataFrame({
        "license_issue_date": issued.strftime("%Y-%m-%d"),
        "species": species,
        "neutered": np.where(neutered, "Yes", "No"),
        "microchipped": np.where(rng.random(n) < 0.6, "Yes", "No"),
        "zip_code": rng.choice(["98103", "98115", "98117", "98107", "98125"], n),
        "age_years": [f"{v:.1f}" for v in np.round(rng.gamma(2.0, 2.5, n), 1)],
    }, dtype=object)


if __name__ == "__main__":  # pragma: no cover - writes the fixtures for a look
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    weather_like().to_csv(out / "weather_like.csv", index=False)
    pets_like().to_csv(out / "pets_like.csv", index=False)
