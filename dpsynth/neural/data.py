"""The neural data path: one-hot layout from the public schema, Poisson loaders, code sampling.

Every modelled column is already an integer code over a public domain (categories, booleans,
null codes and numeric/date bins alike), so the network input is the concatenation of one
one-hot block per column. The layout (column names and block widths) is read off the public
schema only; nothing is learned from the data. Generators output one block of logits per
column; :func:`sample_codes` draws codes from their softmax with a seeded
``torch.Generator`` (post-processing randomness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, require
from dpsynth.tabular.table import Table

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from dpsynth.tabular.schema import Schema

__all__ = [
    "OneHotLayout",
    "check_table",
    "layout_of_schema",
    "one_hot",
    "poisson_loader",
    "sample_codes",
    "sampling_generator",
    "steps_per_epoch",
]


def _torch() -> Any:
    return require("torch", "neural")


@dataclass(frozen=True)
class OneHotLayout:
    """Public layout of the one-hot encoding: one block of ``sizes[j]`` units per column.

    Attributes:
        columns: Modelled column names, in schema order.
        sizes: Domain size of each column.
    """

    columns: tuple[str, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.sizes) or not self.columns:
            raise ConfigError("a one-hot layout needs one size per column and >= 1 column")
        for name, size in zip(self.columns, self.sizes, strict=True):
            if not isinstance(size, int) or size < 1:
                raise ConfigError(f"domain size of column {name!r} ({size!r}) must be >= 1")

    @property
    def width(self) -> int:
        """Total number of one-hot units."""
        return int(sum(self.sizes))

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each column's block (length ``len(columns) + 1``, last = width)."""
        out = [0]
        for s in self.sizes:
            out.append(out[-1] + s)
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"columns": list(self.columns), "sizes": list(self.sizes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OneHotLayout:
        """Inverse of :meth:`to_json`."""
        return cls(tuple(str(c) for c in data["columns"]), tuple(int(s) for s in data["sizes"]))


def layout_of_schema(schema: Schema) -> OneHotLayout:
    """The one-hot layout of the schema's modelled columns (public facts only)."""
    cols = schema.modelled
    return OneHotLayout(tuple(c.name for c in cols), tuple(int(c.domain_size()) for c in cols))


def check_table(table: Table, layout: OneHotLayout) -> None:
    """Raise :class:`ConfigError` unless the table's public domain equals the layout's."""
    if tuple(table.columns) != layout.columns or tuple(table.sizes) != layout.sizes:
        raise ConfigError(
            "the table's columns and domain sizes must equal the schema's modelled columns "
            f"({len(layout.columns)} columns)"
        )


def one_hot(codes: npt.NDArray[np.int64], layout: OneHotLayout) -> torch.Tensor:
    """One-hot encode ``(n, d)`` codes into an ``(n, width)`` float32 tensor.

    Codes are clamped into each column's public domain (encoding already guarantees this;
    the clamp keeps the function total).
    """
    torch = _torch()
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] != len(layout.columns):
        raise ConfigError(f"codes must have shape (rows, {len(layout.columns)})")
    n = codes.shape[0]
    out = np.zeros((n, layout.width), dtype=np.float32)
    rows = np.arange(n)
    for j, (start, size) in enumerate(zip(layout.offsets[:-1], layout.sizes, strict=True)):
        out[rows, start + np.clip(codes[:, j], 0, size - 1)] = 1.0
    return torch.from_numpy(out)  # type: ignore[no-any-return]


def sample_codes(
    logits: torch.Tensor, layout: OneHotLayout, generator: torch.Generator
) -> npt.NDArray[np.int64]:
    """Draw one code per column from the softmax of each logit block.

    Args:
        logits: ``(rows, width)`` unnormalised log-probabilities.
        layout: The one-hot layout.
        generator: Post-processing randomness.

    Returns:
        ``(rows, d)`` int64 codes, each inside its column's domain.
    """
    torch = _torch()
    rows = logits.shape[0]
    out = np.zeros((rows, len(layout.columns)), dtype=np.int64)
    if rows == 0:
        return out
    with torch.no_grad():
        for j, (start, size) in enumerate(zip(layout.offsets[:-1], layout.sizes, strict=True)):
            probs = torch.softmax(logits[:, start : start + size].double(), dim=1)
            draw = torch.multinomial(probs, 1, replacement=True, generator=generator)
            out[:, j] = draw[:, 0].numpy()
    return out


def sampling_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for drawing rows from a trained model (post-processing only).

    ``seed`` comes from the user's post-processing generator (:meth:`NeuralModel.sample`). Every
    generator used while private rows are read (initial weights, Poisson batches, training
    noise) comes instead from the run's secret key (:func:`dpsynth.neural.train.keyed_generator`);
    tests/test_neural_randomness.py checks that no training module calls this function.
    """
    torch = _torch()
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) % (2**63))
    return gen  # type: ignore[no-any-return]


def steps_per_epoch(sample_rate: float) -> int:
    """Batches per epoch of a Poisson loader: ``int(1 / q)`` (Opacus' convention), >= 1."""
    if not 0.0 < sample_rate <= 1.0:
        raise ConfigError(f"sample_rate ({sample_rate}) must be in (0, 1]")
    return max(1, int(1.0 / sample_rate))


class _EmptyLoader:
    """Poisson sampling from an empty table: every batch is empty (Opacus refuses n=0)."""

    def __init__(self, steps: int, width: int, dtype: Any) -> None:
        self.steps, self.width, self.dtype = steps, width, dtype

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Any:
        torch = _torch()
        for _ in range(self.steps):
            yield (torch.zeros((0, self.width), dtype=self.dtype),)


def poisson_loader(x: torch.Tensor, sample_rate: float, generator: torch.Generator) -> Any:
    """An Opacus ``DPDataLoader`` over the rows of ``x``: each batch includes each row
    independently with probability ``sample_rate`` (Poisson sampling; empty batches allowed).

    ``sample_rate`` must come from public or DP-estimated quantities, never from ``len(x)``.
    """
    require("opacus", "neural")
    from opacus.data_loader import DPDataLoader

    if not 0.0 < sample_rate <= 1.0:
        raise ConfigError(f"sample_rate ({sample_rate}) must be in (0, 1]")
    if x.shape[0] == 0:  # value-level edge case: stay total (no exception inside fit)
        return _EmptyLoader(steps_per_epoch(sample_rate), int(x.shape[1]), x.dtype)
    torch = _torch()
    loader = DPDataLoader(
        torch.utils.data.TensorDataset(x), sample_rate=sample_rate, generator=generator
    )
    if len(loader) != steps_per_epoch(sample_rate):  # pragma: no cover - Opacus contract
        raise ConfigError("Opacus DPDataLoader changed its steps-per-epoch convention")
    return loader
