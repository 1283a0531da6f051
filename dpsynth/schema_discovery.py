"""DP schema discovery as a step of a run: read the raw file, discover under a charged budget, build the schema.

:func:`discover_schema` is what ``dpsynth schema discover`` and ``release
--discover-schema-epsilon`` run: the raw rows go behind a
:class:`~dpsynth.privacy.frame_gate.PrivateFrame` whose every answer is charged to the run's
accountant, :func:`dpsynth.mechanisms.discover.discover_columns` derives the missing facts from
those answers, and the columns a partial schema declares stay declared (and cost nothing).
:func:`discovery_rho` is the public rule for how much of a release's budget discovery gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.mechanisms.discover import DiscoveryConfig, discover_columns
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import epsilon_to_rho
from dpsynth.privacy.frame_gate import PrivateFrame
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.reading import read_frame
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["DEFAULT_MISSING", "DiscoveredSchema", "discover_schema", "discovery_rho"]

#: Cells read as null when no schema says otherwise (a public convention, "?" as in UCI files).
DEFAULT_MISSING: tuple[str, ...] = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")


class DiscoveredSchema:
    """A schema found under DP, with the notes of how (no data values in them).

    Attributes:
        schema: The schema (discovered columns have ``source: dp`` and their cost).
        notes: One line per column dropped or treated specially.
        discovered: The names of the columns discovered in this run.
    """

    def __init__(self, schema: Schema, notes: list[str], discovered: list[str]) -> None:
        self.schema = schema
        self.notes = notes
        self.discovered = discovered


def discovery_rho(epsilon: float, discover_epsilon: float, delta: float) -> float:
    """The zCDP budget discovery gets inside a release of ``epsilon``: the model keeps exactly
    what a release at ``epsilon - discover_epsilon`` would have had.

    Raises:
        ConfigError: Unless 0 < ``discover_epsilon`` < ``epsilon``.
    """
    if not 0 < discover_epsilon < epsilon:
        raise ConfigError(f"the schema discovery epsilon ({discover_epsilon}) must be > 0 and below "
                          f"the release's epsilon ({epsilon})")
    return epsilon_to_rho(epsilon, delta) - epsilon_to_rho(epsilon - discover_epsilon, delta)


def _raw_frame(data: pd.DataFrame | str | Path, missing: list[str], sep: str | None) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.astype("string").replace({m: pd.NA for m in missing})
    return read_frame(data, None, sep=sep, na_values=missing)


def discover_schema(data: pd.DataFrame | str | Path, accountant: Accountant, *, rho: float, delta: float,
                    partial: Schema | None = None, name: str | None = None, sep: str | None = None,
                    config: DiscoveryConfig | None = None) -> DiscoveredSchema:
    """Discover the schema of ``data`` under DP, charging ``accountant`` at most ``rho``.

    Args:
        data: The confidential rows: a DataFrame or a CSV/Parquet path (never modified).
        accountant: The run's accountant (its budget already reserved).
        rho: The zCDP budget of discovery.
        delta: The run's delta (thresholded histograms use a share of it).
        partial: A schema declaring some columns (and the unit of privacy, missing-value
            tokens); its columns stay as declared and the others are discovered.
        name: The schema's name (default: the file's stem).
        sep: The CSV delimiter.
        config: The public rules of discovery.
    """
    missing = list(partial.missing_values) if partial is not None else list(DEFAULT_MISSING)
    frame = _raw_frame(data, missing, sep)
    declared = {c.name: c for c in partial.columns} if partial is not None else {}
    unknown = sorted(set(declared) - {str(c) for c in frame.columns})
    if unknown:
        raise SchemaError(f"the partial schema declares columns {unknown} that the data does not have")
    unit = partial.privacy_unit if partial is not None else None
    person = unit.column if unit is not None and unit.kind == "person" else None
    gate = PrivateFrame(frame, accountant, key=MechanismKey.fresh(), unit_column=person,
                        max_rows=int(unit.sensitivity_rows) if unit is not None else 1)
    todo = [str(c) for c in frame.columns if str(c) not in declared]
    config = config or DiscoveryConfig()
    # The thresholds will use part of delta, which shrinks the rho that fits: plan within it.
    rho = min(rho, accountant.room(config.delta_share * delta) * (1 - 1e-9))
    found, notes = discover_columns(gate, todo, rho=rho, delta=delta, config=config) if todo else ([], [])
    by_name = {spec["name"]: spec for spec in found}
    columns: list[dict[str, Any]] = [
        declared[str(c)].model_dump(mode="json", exclude_defaults=True) | {"kind": declared[str(c)].kind}
        if str(c) in declared else by_name[str(c)] for c in frame.columns]
    stem = name or (Path(data).stem if not isinstance(data, pd.DataFrame) else "discovered")
    spec: dict[str, Any] = {"name": stem, "missing_values": missing, "columns": columns}
    if partial is not None:
        spec["privacy_unit"] = partial.privacy_unit.model_dump(mode="json", exclude_none=True)
        spec["constraints"] = list(partial.constraints)
    try:
        schema = parse_schema(spec, "discovered schema")
    except SchemaError as exc:
        raise SchemaError(f"discovery found no column to model ({exc})") from None
    return DiscoveredSchema(schema, notes, todo)
