"""The fitted neural model as a value, its sampler, and safe save/load (no pickle).

A :class:`NeuralModel` keeps only what sampling needs: the public one-hot layout, the
architecture, the weights of the sampling network (VAE decoder or GAN generator; never the
encoder or discriminator), the DP-estimated row count, the noisy 1-way marginals used for
marginal calibration (public transcript) and the privacy parameters. It holds no training rows.
On disk: ``model.json`` (metadata) plus ``weights.safetensors`` when the ``safetensors``
package is installed, else ``weights.npz`` (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, require
from dpsynth.neural.calibrate import calibrated_sample
from dpsynth.neural.data import OneHotLayout, sample_codes, sampling_generator
from dpsynth.privacy.guarantee import PrivacyStatement, dpsgd_statement
from dpsynth.tabular.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["FORMAT_VERSION", "NeuralModel", "load_neural", "save_neural"]

#: Version of the on-disk format (2 adds the noisy 1-way marginals; 1 still loads).
FORMAT_VERSION = 2
_READABLE = (1, 2)
Kind = Literal["dpvae", "dpgan"]


@dataclass(frozen=True, eq=False)
class NeuralModel:
    """A fitted DP-VAE or DP-GAN: everything needed to sample, nothing private.

    Attributes:
        kind: ``"dpvae"`` or ``"dpgan"``.
        layout: Public one-hot layout (column names and domain sizes).
        hidden: Hidden widths of the networks.
        latent_dim: Size of the sampling network's input noise.
        weights: The sampling network's parameters, as float32 arrays.
        estimated_rows: The DP-estimated (or user-given) row count: the default output size.
        privacy: Public DP-SGD parameters (noise multiplier, q, steps, C, epsilon, delta, ...).
        schema_sha256: Hash of the public schema the model was fitted with.
        marginals: Noisy 1-way marginal of every column (clipped at 0, normalised), or
            ``None`` when none were measured (then sampling is uncalibrated).
        oversample: Candidate rows drawn per output row for marginal calibration.
        calibration_iters: Maximum raking sweeps of marginal calibration.
    """

    kind: Kind
    layout: OneHotLayout
    hidden: tuple[int, ...]
    latent_dim: int
    weights: Mapping[str, npt.NDArray[np.float32]] = field(repr=False)
    estimated_rows: int
    privacy: Mapping[str, Any]
    schema_sha256: str = ""
    marginals: tuple[npt.NDArray[np.float64], ...] | None = field(default=None, repr=False)
    oversample: int = 6
    calibration_iters: int = 50

    @property
    def statement(self) -> PrivacyStatement:
        """How this fit's guarantee is obtained: Opacus float noise, RDP accounting, keyed training."""
        return dpsgd_statement(self.kind, secure_mode=bool(self.privacy.get("secure_mode", True)))

    def __post_init__(self) -> None:
        if self.kind not in ("dpvae", "dpgan"):
            raise ConfigError(f"kind ({self.kind!r}) must be 'dpvae' or 'dpgan'")
        if self.estimated_rows < 0:
            raise ConfigError(f"estimated_rows ({self.estimated_rows}) must be >= 0")
        if self.oversample < 1 or self.calibration_iters < 1:
            raise ConfigError(
                f"oversample ({self.oversample}) and calibration_iters "
                f"({self.calibration_iters}) must be >= 1"
            )
        if self.marginals is not None:
            margs = tuple(np.asarray(m, dtype=np.float64) for m in self.marginals)
            if tuple(m.shape for m in margs) != tuple((s,) for s in self.layout.sizes):
                raise ConfigError("marginals must hold one vector per column of the layout's size")
            object.__setattr__(self, "marginals", margs)

    def _network(self) -> Any:
        cached = self.__dict__.get("_net")
        if cached is not None:
            return cached
        torch: Any = require("torch", "neural")
        # Construction draws throwaway initial weights from torch's global generator; fork it
        # so sampling leaves the caller's global state alone (the stored weights replace them).
        with torch.random.fork_rng(devices=[]):
            if self.kind == "dpvae":
                from dpsynth.neural.vae import build_decoder

                net = build_decoder(self.latent_dim, self.hidden, self.layout.width)
            else:
                from dpsynth.neural.gan import build_generator

                net = build_generator(self.latent_dim, self.hidden, self.layout.width)
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in self.weights.items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"weights do not match the {self.kind} architecture") from exc
        net.eval()
        object.__setattr__(self, "_net", net)
        return net

    def sample(
        self, rows: int, rng: np.random.Generator, *, calibrate: bool = True
    ) -> npt.NDArray[np.int64]:
        """Draw ``rows`` synthetic rows as codes ``(rows, d)`` (pure post-processing).

        With ``calibrate`` (and stored marginals), ``oversample * rows`` candidates are drawn
        from the network, raked to the noisy 1-way marginals and resampled (marginal
        calibration, docs/neural.md). The same ``rng`` state gives the same rows. ``rng`` is
        post-processing randomness (the user's seed); it never reaches training.
        """
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 0:
            raise ConfigError(f"rows ({rows!r}) must be an integer >= 0")
        gen = sampling_generator(int(rng.integers(0, 2**63 - 1)))
        if not calibrate or self.marginals is None:
            return self._draw(int(rows), gen)
        return calibrated_sample(
            lambda m: self._draw(m, gen), int(rows), self.marginals, rng,
            oversample=self.oversample, max_iter=self.calibration_iters,
        )

    def _draw(self, rows: int, gen: Any) -> npt.NDArray[np.int64]:
        torch: Any = require("torch", "neural")
        net = self._network()
        chunks = []
        with torch.no_grad():
            for start in range(0, rows, 65536):
                m = min(65536, rows - start)
                z = torch.randn(m, self.latent_dim, generator=gen)
                chunks.append(sample_codes(net(z), self.layout, gen))
        if not chunks:
            return np.zeros((0, len(self.layout.columns)), dtype=np.int64)
        return np.concatenate(chunks, axis=0)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready metadata (everything but the weights)."""
        return {
            "format": "dpsynth-neural",
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "layout": self.layout.to_json(),
            "hidden": list(self.hidden),
            "latent_dim": self.latent_dim,
            "estimated_rows": self.estimated_rows,
            "privacy": dict(self.privacy),
            "schema_sha256": self.schema_sha256,
            "marginals": (
                None if self.marginals is None else [[float(v) for v in m] for m in self.marginals]
            ),
            "oversample": self.oversample,
            "calibration_iters": self.calibration_iters,
        }


def _has_safetensors() -> bool:
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        return False
    return True


def save_neural(model: NeuralModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed); returns the weights file path.

    Files are written atomically. No pickle is used anywhere.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in model.weights.items()}
    meta = model.metadata()
    if _has_safetensors():
        from safetensors.numpy import save

        meta["weights"] = "weights.safetensors"
        path = d / "weights.safetensors"
        write_bytes_atomic(path, save(arrays))
    else:
        meta["weights"] = "weights.npz"
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        path = d / "weights.npz"
        write_bytes_atomic(path, buf.getvalue())
    write_text_atomic(d / "model.json", json.dumps(meta, indent=2, sort_keys=True, allow_nan=False))
    return path


def load_neural(directory: str | Path) -> NeuralModel:
    """Read a model written by :func:`save_neural` (no pickle; unknown formats refused)."""
    d = Path(directory)
    try:
        meta = json.loads((d / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{d / 'model.json'} is missing or not valid JSON") from exc
    if meta.get("format") != "dpsynth-neural" or meta.get("format_version") not in _READABLE:
        raise ConfigError(f"{d} is not a dpsynth neural model of format {_READABLE}")
    name = meta.get("weights")
    if name == "weights.safetensors":
        if not _has_safetensors():
            raise ConfigError("the model's weights are in safetensors; install safetensors")
        from safetensors.numpy import load_file

        weights = {k: np.asarray(v, dtype=np.float32) for k, v in load_file(d / name).items()}
    elif name == "weights.npz":
        with np.load(d / name, allow_pickle=False) as z:
            weights = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    else:
        raise ConfigError(f"unknown weights file {name!r} in {d / 'model.json'}")
    return NeuralModel(
        kind=meta["kind"],
        layout=OneHotLayout.from_json(meta["layout"]),
        hidden=tuple(int(h) for h in meta["hidden"]),
        latent_dim=int(meta["latent_dim"]),
        weights=weights,
        estimated_rows=int(meta["estimated_rows"]),
        privacy=dict(meta["privacy"]),
        schema_sha256=str(meta.get("schema_sha256", "")),
        marginals=(
            None if meta.get("marginals") is None
            else tuple(np.asarray(m, dtype=np.float64) for m in meta["marginals"])
        ),
        oversample=int(meta.get("oversample", 6)),
        calibration_iters=int(meta.get("calibration_iters", 50)),
    )
