"""Mechanisms: each one module, registered here by name (see :mod:`dpsynth.mechanisms.registry`).

Importing the package registers the built-in mechanisms, in this order; a new mechanism
adds its module and one :func:`~dpsynth.mechanisms.registry.register` line below (or calls
``register`` from its own package).
"""

from __future__ import annotations

from dpsynth.mechanisms.aim import AIMMechanism
from dpsynth.mechanisms.dpsgd import DPSGDMechanism
from dpsynth.mechanisms.independent import IndependentMechanism, SchemaOnlyMechanism
from dpsynth.mechanisms.mst import MSTMechanism
from dpsynth.mechanisms.registry import Mechanism, get, names, register

__all__ = ["Mechanism", "get", "names", "register"]

register(SchemaOnlyMechanism(), replace=True)
register(IndependentMechanism(), replace=True)
register(MSTMechanism(), replace=True)
register(AIMMechanism(), replace=True)
register(DPSGDMechanism("dpvae"), replace=True)
register(DPSGDMechanism("dpgan"), replace=True)
