"""The three sources of randomness, as types, so a signature says which one it takes.

dpsynth draws random numbers for three different purposes, and they must never mix
(docs/privacy-model.md, "Randomness: what the seed controls and what it never touches"):

1. **DP noise** — the discrete Gaussian and noisy-max draws that the guarantee rests on. They
   come from OpenDP only (:mod:`dpsynth.privacy.noise`), are unseedable, and have no type here: no
   dpsynth function accepts a generator for them.
2. **In-mechanism randomness** — anything drawn while private data is read: which rows of a
   person contribution bounding keeps, DP-SGD's Poisson batches and training-time noise
   (initial weights, the VAE's reparameterisation noise, the GAN's generator noise). It comes
   from a :class:`MechanismKey`: 256 bits from :mod:`secrets`, one per run, never derived from
   the user's seed, never written to any file, never shown by ``repr``.
3. **Post-processing randomness** — sampling rows from a fitted model, decoding bins to
   values, identifier tokens. It comes from a :class:`PostProcessingSeed`, the user's
   ``--seed``, which the manifest may publish: knowing it reveals nothing private because
   everything it touches is already a function of the public transcript.

A seed that reached (1) or (2) would let anyone who reads the manifest replay the mechanism's
choices (a red-team attack did exactly that on person-level bounding); keeping the types apart
makes that mistake visible in review and testable.
"""

from __future__ import annotations

import hashlib
import operator
import secrets
from dataclasses import dataclass, field

import numpy as np

from dpsynth.errors import ConfigError

__all__ = ["MechanismKey", "PostProcessingSeed"]

_KEY_BYTES = 32


@dataclass(frozen=True, eq=False)
class MechanismKey:
    """The per-run secret behind in-mechanism randomness.

    Create one with :meth:`fresh` for every run (a fit, a release). Audits that must replay a
    mechanism on neighbouring datasets with the same choices build one with
    :meth:`for_audit`; nothing on a release path does.

    The key is never serialised: it has no ``to_json``, its ``repr`` hides it, and equality
    is identity.
    """

    _secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self._secret, bytes) or len(self._secret) != _KEY_BYTES:
            raise ConfigError(f"a mechanism key must be {_KEY_BYTES} bytes")

    @classmethod
    def fresh(cls) -> MechanismKey:
        """A new key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    @classmethod
    def for_audit(cls, label: str) -> MechanismKey:
        """A fixed key derived from ``label``: for self-audits and tests only.

        Neighbouring-dataset campaigns run a mechanism on D and on D plus one person with the
        same in-mechanism choices; that needs a reproducible key. A release never uses one.
        """
        return cls(hashlib.sha256(b"dpsynth audit key|" + label.encode("utf-8")).digest())

    def __repr__(self) -> str:
        return "MechanismKey(<secret>)"

    def hex_for(self, purpose: str) -> str:
        """A 128-bit hex sub-key for ``purpose`` (e.g. ``"bounding"``), for keyed hashing.

        Sub-keys of different purposes are independent, so a sub-key handed to a SQL engine
        (where it appears in query text inside the trusted process) reveals nothing of the
        others.
        """
        return hashlib.sha256(self._secret + b"|" + purpose.encode("utf-8")).hexdigest()[:32]

    def int_seed(self, purpose: str) -> int:
        """A 63-bit integer derived from the key for ``purpose`` (to seed a torch generator)."""
        digest = hashlib.sha256(self._secret + b"|seed|" + purpose.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    def generator(self, purpose: str) -> np.random.Generator:
        """A numpy generator keyed by the secret and ``purpose`` (PCG64 from 256 key bits)."""
        digest = hashlib.sha256(self._secret + b"|rng|" + purpose.encode("utf-8")).digest()
        return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


@dataclass(frozen=True)
class PostProcessingSeed:
    """The user's seed: post-processing randomness only (sampling, decoding, tokens).

    Attributes:
        value: The seed given by the user (published in the manifest), or ``None`` to draw a
            fresh one from the OS for each generator.
    """

    value: int | None = None

    def __post_init__(self) -> None:
        if self.value is None:
            return
        if isinstance(self.value, bool):
            raise ConfigError(f"seed ({self.value!r}) must be an integer")
        try:
            object.__setattr__(self, "value", operator.index(self.value))  # numpy ints too
        except TypeError:
            raise ConfigError(f"seed ({self.value!r}) must be an integer") from None

    def generator(self) -> np.random.Generator:
        """A numpy generator from the seed (fresh entropy when no seed was given)."""
        return np.random.default_rng(self.value)
