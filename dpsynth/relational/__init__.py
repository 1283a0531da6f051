"""Linked tables under one person-level guarantee: a root table of persons and child tables
that point at it (:mod:`~dpsynth.relational.schema`, :mod:`~dpsynth.relational.fit`,
:mod:`~dpsynth.relational.plan`, :mod:`~dpsynth.relational.bundle`; CONFIDENTIAL evaluation
and membership inference in :mod:`~dpsynth.relational.evaluate` and
:mod:`~dpsynth.relational.audit`)."""

from dpsynth.relational.fit import RelationalSynthesizer, fit_relational
from dpsynth.relational.schema import RelationalSchema, load_relational

__all__ = ["RelationalSchema", "RelationalSynthesizer", "fit_relational", "load_relational"]
