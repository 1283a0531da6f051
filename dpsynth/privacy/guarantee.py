"""What a mechanism's guarantee rests on, as a typed value built by the mechanism itself.

Every public statement of a release — ``manifest.json``'s ``privacy`` block, the
``privacy_statement.md`` a legal team attaches, the public report — takes its wording about
noise, accounting and randomness from one :class:`PrivacyStatement`, and the mechanism that
ran builds it (:func:`marginal_statement`, :func:`dpsgd_statement`, :func:`no_data_statement`).
So the statement of a DP-SGD release names floating-point noise and RDP accounting, and no
statement says the seed does more, or less, than the code lets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpsynth.errors import ConfigError

__all__ = [
    "SEED_CONTROLS",
    "SEED_NEVER_TOUCHES",
    "PrivacyStatement",
    "dpsgd_statement",
    "marginal_statement",
    "no_data_statement",
    "statement_for",
]

#: What the user's ``--seed`` drives: post-processing of the public transcript only.
SEED_CONTROLS: tuple[str, ...] = (
    "drawing synthetic rows from the fitted model",
    "decoding binned values to numbers and dates",
    "identifier tokens",
)
#: What the seed never reaches (each has a test in the suite).
SEED_NEVER_TOUCHES: tuple[str, ...] = (
    "differential-privacy noise (OpenDP, Opacus)",
    "private selection (noisy max)",
    "contribution bounding of person-level units",
    "DP-SGD batch sampling, weight initialisation and training-time noise",
)


@dataclass(frozen=True, kw_only=True)
class PrivacyStatement:
    """How one fit's guarantee is obtained, in words that match the code.

    Attributes:
        mechanism: The mechanism's name.
        variant: The DP variant accounted and the conversion to (epsilon, delta)-DP.
        accounting: How the charged steps were composed.
        noise: Where the DP noise comes from and what kind it is.
        in_mechanism_randomness: Where randomness drawn while private data is read comes from.
        seed_controls: What the user's seed drives.
        seed_never_touches: What the user's seed never reaches.
        caveats: Mechanism-specific caveats (in addition to the schema's and the unit's).
    """

    mechanism: str
    variant: str
    accounting: str
    noise: str
    in_mechanism_randomness: str
    seed_controls: tuple[str, ...] = SEED_CONTROLS
    seed_never_touches: tuple[str, ...] = SEED_NEVER_TOUCHES
    caveats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("mechanism", "variant", "accounting", "noise", "in_mechanism_randomness"):
            if not str(getattr(self, name)).strip():
                raise ConfigError(f"privacy statement field {name!r} must not be empty")

    @property
    def seed_note(self) -> str:
        """One sentence on the seed's role."""
        return ("the seed drives only post-processing (" + ", ".join(self.seed_controls)
                + "); it never reaches " + ", ".join(self.seed_never_touches))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the manifest's ``privacy.statement``)."""
        return {
            "mechanism": self.mechanism,
            "variant": self.variant,
            "accounting": self.accounting,
            "noise": self.noise,
            "in_mechanism_randomness": self.in_mechanism_randomness,
            "seed_controls": list(self.seed_controls),
            "seed_never_touches": list(self.seed_never_touches),
            "caveats": list(self.caveats),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrivacyStatement:
        """Inverse of :meth:`to_json`."""
        try:
            return cls(
                mechanism=str(data["mechanism"]), variant=str(data["variant"]),
                accounting=str(data["accounting"]), noise=str(data["noise"]),
                in_mechanism_randomness=str(data["in_mechanism_randomness"]),
                seed_controls=tuple(data["seed_controls"]),
                seed_never_touches=tuple(data["seed_never_touches"]),
                caveats=tuple(data.get("caveats", ())),
            )
        except (KeyError, TypeError):
            raise ConfigError("privacy statement: a field is missing or malformed") from None


_BOUNDING = ("contribution bounding of person-level units keeps each person's rows by a keyed "
             "hash under a per-run secret key from the operating system's CSPRNG; the key is "
             "never stored or published")


def marginal_statement(mechanism: str) -> PrivacyStatement:
    """The statement of a marginal-based mechanism (independent, MST, AIM)."""
    return PrivacyStatement(
        mechanism=mechanism,
        variant="zero-concentrated DP (rho-zCDP), converted to approximate (epsilon, delta)-DP",
        accounting="zCDP composition: the rho of every Gaussian measurement and noisy-max "
        "selection adds up; one conversion to (epsilon, delta) at the end",
        noise="exact discrete Gaussian noise on integer counts and Gumbel noisy-max selection, "
        "both from OpenDP, drawn from the operating system's CSPRNG (unseedable)",
        in_mechanism_randomness=_BOUNDING,
    )


def dpsgd_statement(mechanism: str, *, secure_mode: bool) -> PrivacyStatement:
    """The statement of a DP-SGD generator (dpvae, dpgan)."""
    mode = ("secure_mode on: each draw is a sum of four Gaussians, against floating-point attacks"
            if secure_mode else "secure_mode off")
    return PrivacyStatement(
        mechanism=mechanism,
        variant="Renyi DP (RDP) of the Poisson-subsampled Gaussian, composed with the zCDP "
        "Gaussian measurements of the row count or 1-way marginals, converted to approximate "
        "(epsilon, delta)-DP",
        accounting="RDP composition at fixed orders of the DP-SGD steps and the Gaussian "
        "measurements, converted to (epsilon, delta) at the best order",
        noise="floating-point Gaussian noise on clipped per-sample gradient sums from Opacus "
        f"(torch), its generator seeded from the operating system's CSPRNG ({mode}); the row "
        "count and 1-way marginals get exact discrete Gaussian noise from OpenDP",
        in_mechanism_randomness="Poisson batch sampling, weight initialisation and training-time "
        "noise (the VAE's reparameterisation noise, the GAN's generator noise) come from torch "
        "generators (Mersenne Twister, not cryptographic) seeded from a per-run secret key from "
        "the operating system's CSPRNG; the key is never stored or published",
        caveats=("Floating-point Gaussian noise is weaker against floating-point attacks than "
                 "the exact integer noise of the marginal-based generators.",),
    )


def no_data_statement(mechanism: str) -> PrivacyStatement:
    """The statement of a mechanism that reads no private data (schema_only)."""
    return PrivacyStatement(
        mechanism=mechanism,
        variant="none needed: no private data was read (epsilon = 0)",
        accounting="nothing was charged",
        noise="none: the rows are drawn from the public schema alone",
        in_mechanism_randomness="none: no private data was read",
    )


def statement_for(mechanism: str, *, secure_mode: bool = True) -> PrivacyStatement:
    """The statement of ``mechanism`` by name (for models saved before statements were stored)."""
    if mechanism == "schema_only":
        return no_data_statement(mechanism)
    if mechanism in ("dpvae", "dpgan"):
        return dpsgd_statement(mechanism, secure_mode=secure_mode)
    return marginal_statement(mechanism)
