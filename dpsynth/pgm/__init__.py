"""Graphical-model engine: estimate a junction-tree model from noisy marginals and sample it."""

from __future__ import annotations

from dpsynth.pgm.clique_vector import CliqueVector
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.estimate import WarmStart, estimate, estimate_total, total_stderr
from dpsynth.pgm.factor import Factor
from dpsynth.pgm.inference import Beliefs, Calibrator
from dpsynth.pgm.junction_tree import (
    JunctionTree,
    TreeSizer,
    build_junction_tree,
    hypothetical_model_size,
    junction_tree_size,
)
from dpsynth.pgm.model import Model, load_model, save_model
from dpsynth.pgm.sample import sample, sample_with_shares

__all__ = [
    "Beliefs",
    "Calibrator",
    "CliqueVector",
    "Domain",
    "Factor",
    "JunctionTree",
    "Model",
    "TreeSizer",
    "WarmStart",
    "build_junction_tree",
    "estimate",
    "estimate_total",
    "hypothetical_model_size",
    "junction_tree_size",
    "load_model",
    "sample",
    "sample_with_shares",
    "save_model",
    "total_stderr",
]
