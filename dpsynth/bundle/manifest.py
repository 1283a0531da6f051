"""The release manifest: the record of what a bundle holds and guarantees, and its verification.

:func:`build_manifest` turns a fitted :class:`~dpsynth.synthesizer.Synthesizer`'s public statement
into the ``manifest.json`` of a release bundle (docs/bundle.md), and :func:`sha256_file` and
:func:`format_sha256sums` / :func:`parse_sha256sums` handle the checksums. Checking a bundle
against its manifest is :mod:`dpsynth.bundle.verify`. Nothing here reads private data.
"""

from __future__ import annotations

import hashlib
import platform
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from dpsynth.synthesizer import Synthesizer

__all__ = [
    "MANIFEST_VERSION",
    "MODEL_DIR",
    "MODEL_FILE",
    "REQUIRED_FILES",
    "REQUIRED_KEYS",
    "RowsChoice",
    "build_manifest",
    "format_sha256sums",
    "parse_sha256sums",
    "sha256_file",
    "software_versions",
]

MANIFEST_VERSION = 1

REQUIRED_FILES: tuple[str, ...] = (
    "synthetic.csv",
    "synthetic.parquet",
    "schema.yaml",
    "manifest.json",
    "privacy_statement.md",
    "report/index.html",
    "report/report.json",
    "SHA256SUMS",
)
"""Every file a bundle must hold (docs/bundle.md)."""

MODEL_DIR = "model"
"""Where a release saves its fitted synthesizer (``Synthesizer.save``: JSON + npz, no pickle).

Every release writes it, and each of its files is in ``outputs`` and ``SHA256SUMS``; it is
not in :data:`REQUIRED_FILES`, so bundles written before it existed still verify."""

MODEL_FILE = f"{MODEL_DIR}/synthesizer.json"
"""The file that marks a bundle as holding a model (``dpsynth sample BUNDLE`` needs it)."""

REQUIRED_KEYS: tuple[str, ...] = (
    "privacy.epsilon",
    "privacy.delta",
    "privacy.rho",
    "privacy.unit",
    "privacy.ledger",
    "privacy.caveats",
    "generator.mechanism",
    "software.dpsynth",
    "input.schema_sha256",
    "outputs",
)
"""Manifest keys the CLI contract promises (dotted paths)."""

TRUST_MODEL = (
    "central: the data controller runs dpsynth locally on the confidential data; the machine and "
    "the software are trusted to compute exact counts, and only the noisy, differentially private "
    "results leave it"
)

NOT_PROTECTED = (
    "the public schema: column names, categories, bounds, bin edges, nullability and constraints "
    "(declared public, not derived from the data under the guarantee)",
    "the unit of privacy itself: a person with more rows than the declared bound, or the same "
    "person under several identifiers, is protected less",
    "the combined effect of this release with other releases about the same people, unless they "
    "are charged to the same persistent ledger",
    "facts about groups: differential privacy limits what is learnt about one unit, not "
    "population-level inferences",
)


@dataclass(frozen=True, kw_only=True)
class RowsChoice:
    """How the number of synthetic rows was chosen.

    Attributes:
        count: The number of rows released.
        source: ``dp_estimate`` (the noisy total of the mechanism) or ``user``.
        dp_estimate: The DP estimate of the input's size (public, post-processing).
    """

    count: int
    source: Literal["dp_estimate", "user"]
    dp_estimate: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, with a note for readers."""
        note = (
            "the row count is the differentially private estimate of the input's size; the exact "
            "input size is not published"
            if self.source == "dp_estimate"
            else "the row count was chosen by the data controller; it carries no information "
            "about the input"
        )
        return {"count": self.count, "source": self.source, "dp_estimate": self.dp_estimate,
                "note": note}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_sha256sums(entries: dict[str, str]) -> str:
    """``sha256sum``-compatible text: ``<hex>  <relative path>`` per line, sorted by path."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items()))


def parse_sha256sums(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``sha256sum`` output into ``{path: hex}`` and a list of malformed line numbers."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, path = line.partition("  ")
        if not sep:
            digest, sep, path = line.partition(" *")
        digest = digest.strip().lower()
        if not sep or len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            bad.append(f"line {lineno}")
            continue
        out[path.strip()] = digest
    return out, bad


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """Versions of dpsynth and the libraries that shape the guarantee and the output."""
    import dpsynth

    return {
        "dpsynth": dpsynth.__version__,
        "python": platform.python_version(),
        "opendp": _version("opendp"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
        "scipy": _version("scipy"),
    }


def _not_protected(dp_columns: list[str]) -> list[str]:
    """:data:`NOT_PROTECTED`, saying which schema facts the guarantee covers when some were derived under DP."""
    if not dp_columns:
        return list(NOT_PROTECTED)
    first = ("the declared part of the public schema: column names, categories, bounds, bin edges, "
             f"nullability and constraints not marked source: dp (the facts of columns {dp_columns} "
             "were derived under differential privacy, their cost is in the ledger, and they are covered)")
    return [first, *NOT_PROTECTED[1:]]


def _public_inputs(synth: Synthesizer) -> dict[str, Any]:
    schema = synth.schema
    dp_columns = [c for c, _ in schema.dp_fact_costs()]
    how = ("a declared public input, or derived under differential privacy where marked source: dp "
           "(its cost in the ledger)" if dp_columns else "a declared public input")
    return {
        "schema": "schema.yaml",
        "domain": schema.domain(),
        "constraints": len(schema.constraints),
        "description": f"every category, bound, bin edge and constraint in schema.yaml is {how}; "
        "the synthetic rows can only take values in this domain",
    }


def build_manifest(
    synth: Synthesizer,
    *,
    rows: RowsChoice,
    seed: int | None,
    allow_private_schema: bool,
    requested: dict[str, float | None],
    outputs: list[dict[str, Any]],
    release_id: str | None = None,
    created_utc: str | None = None,
) -> dict[str, Any]:
    """Assemble ``manifest.json`` from a fitted synthesizer's public statement.

    Args:
        synth: The fitted synthesizer (its ``privacy`` statement, schema and parameters).
        rows: How many rows were released and why.
        seed: The post-processing seed, if one was given.
        allow_private_schema: Whether a schema with ``private_inferred`` facts was accepted.
        requested: The budget the data controller asked for (``epsilon``, ``delta``, ``rho``).
        outputs: ``[{path, sha256, rows}]`` of the bundle's other files.
        release_id: A fixed id (default: a fresh UUID4).
        created_utc: A fixed timestamp (default: now).

    Returns:
        The manifest as a JSON-ready dict.
    """
    p = synth.privacy
    statement = synth.guarantee
    unit = synth.schema.privacy_unit
    inferred = synth.schema.private_inferred()
    privacy: dict[str, Any] = {
        "epsilon": p.epsilon,
        "delta": p.delta,
        "rho": p.rho,
        "variant": statement.variant,
        "accounting": statement.accounting,
        "conversion": p.conversion,
        "neighbouring": p.neighbouring,
        "unit": p.unit,
        "unit_of_privacy": {"kind": unit.kind, "identifier": unit.column,
                            "max_rows": unit.sensitivity_rows},
        "requested": requested,
        "trust_model": TRUST_MODEL,
        "noise": statement.noise,
        "in_mechanism_randomness": statement.in_mechanism_randomness,
        "seed_controls": list(statement.seed_controls),
        "seed_never_touches": list(statement.seed_never_touches),
        "ledger": [step.to_json() for step in p.ledger],
        "caveats": list(p.caveats),
        "not_protected": _not_protected([c for c, _ in synth.schema.dp_fact_costs()]),
        "private_schema_accepted": bool(inferred) and allow_private_schema,
        "private_inferred_columns": inferred if allow_private_schema else [],
    }
    return {
        "manifest_version": MANIFEST_VERSION,
        "release_id": release_id or str(uuid.uuid4()),
        "created_utc": created_utc or datetime.now(UTC).isoformat(timespec="seconds"),
        "software": software_versions(),
        "input": {
            "schema_sha256": synth.schema.sha256(),
            "schema_name": synth.schema.name,
            "public_inputs": _public_inputs(synth),
            "data_fingerprint": None,
            "data_fingerprint_note": "no hash of the confidential input is published: a plain "
            "hash of private data can be confirmed by guessing",
        },
        "privacy": privacy,
        "generator": {
            "mechanism": synth.mechanism,
            "parameters": synth.params,
            "selected": [list(c) for c in synth.selected],
            "measured": [{"clique": list(m.clique), "sigma": m.sigma} for m in synth.measurements],
            "post_processing_seed": seed,
            "seed_note": statement.seed_note,
        },
        "rows": rows.to_json(),
        "outputs": outputs,
    }
