"""Linked tables under one person-level guarantee: a root table of persons and child tables
that point at it (:mod:`dpsynth.relational.schema`, :mod:`dpsynth.relational.fit`,
:mod:`dpsynth.relational.bundle`)."""

from dpsynth.relational.fit import RelationalSynthesizer, fit_relational
from dpsynth.relational.schema import RelationalSchema, load_relational

__all__ = ["RelationalSchema", "RelationalSynthesizer", "fit_relational", "load_relational"]
