"""Mechanisms: each one module, registered here by name (see :mod:`dpsynth.mechanisms.registry`).

Importing the package registers the built-in mechanisms by module path, in this order; each
module is imported when its mechanism is first looked up, so ``sample`` imports none of them
and ``fit -m mst`` only MST's. A new mechanism adds its module and one
:func:`~dpsynth.mechanisms.registry.register_lazy` line below (or calls
:func:`~dpsynth.mechanisms.registry.register` from its own package).
"""

from __future__ import annotations

from dpsynth.mechanisms.registry import Mechanism, get, names, register, register_lazy

__all__ = ["Mechanism", "get", "names", "register"]

# Registered by module path: a mechanism's module is imported when it is first looked up.
register_lazy("schema_only", "dpsynth.mechanisms.independent", "SchemaOnlyMechanism")
register_lazy("independent", "dpsynth.mechanisms.independent", "IndependentMechanism")
register_lazy("mst", "dpsynth.mechanisms.mst", "MSTMechanism")
register_lazy("aim", "dpsynth.mechanisms.aim", "AIMMechanism")
register_lazy("dpvae", "dpsynth.mechanisms.dpsgd", "DPSGDMechanism", "dpvae")
register_lazy("dpgan", "dpsynth.mechanisms.dpsgd", "DPSGDMechanism", "dpgan")
