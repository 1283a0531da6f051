"""dpsynth: privacy-first synthetic tabular data with formal differential-privacy guarantees.

The public API::

    import dpsynth
    schema = dpsynth.load_schema("schema.yaml")
    synth = dpsynth.fit("data.csv", schema, mechanism="aim", epsilon=1.0, delta=1e-9)
    rows = synth.sample(seed=0)
    more = dpsynth.load_bundle("bundle/").sample(1000, conditions=["age>=40"], seed=1)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ZCDP",
    "Accountant",
    "ApproxDP",
    "PureDP",
    "Schema",
    "Synthesizer",
    "__version__",
    "fit",
    "load",
    "load_bundle",
    "load_schema",
    "release",
    "verify_bundle",
]

_LAZY = {
    "Accountant": "dpsynth.privacy.accountant",
    "ApproxDP": "dpsynth.privacy.budget",
    "PureDP": "dpsynth.privacy.budget",
    "ZCDP": "dpsynth.privacy.budget",
    "Schema": "dpsynth.tabular.schema",
    "load_schema": "dpsynth.tabular.schema",
    "Synthesizer": "dpsynth.synthesizer",
    "fit": "dpsynth.api",
    "load": "dpsynth.synthesizer",
    "load_bundle": "dpsynth.bundle.load",
    "release": "dpsynth.bundle.write",
    "verify_bundle": "dpsynth.bundle.write",
}


def __getattr__(name: str) -> Any:
    """Import the public API lazily, so ``import dpsynth`` and the CLI start fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dpsynth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
