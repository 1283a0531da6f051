"""The public domain of a graphical model: attribute names and their numbers of codes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import prod

from dpsynth.errors import ConfigError

__all__ = ["Domain"]


@dataclass(frozen=True)
class Domain:
    """An ordered set of discrete attributes, each with codes ``0..size-1``.

    Attributes:
        attrs: Attribute names, in axis order.
        shape: Number of codes of each attribute, aligned with ``attrs``.
    """

    attrs: tuple[str, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.attrs) != len(self.shape):
            raise ConfigError(
                f"domain has {len(self.attrs)} attributes but {len(self.shape)} sizes"
            )
        if len(set(self.attrs)) != len(self.attrs):
            raise ConfigError(f"domain attributes {self.attrs} must be distinct")
        for attr, size in zip(self.attrs, self.shape, strict=True):
            if int(size) < 1:
                raise ConfigError(f"size of attribute {attr!r} ({size}) must be >= 1")

    @classmethod
    def from_dict(cls, sizes: Mapping[str, int]) -> Domain:
        """Build a domain from ``{attribute: number of codes}`` (insertion order kept)."""
        return cls(tuple(sizes), tuple(int(v) for v in sizes.values()))

    def to_dict(self) -> dict[str, int]:
        """Return ``{attribute: number of codes}`` in axis order."""
        return dict(zip(self.attrs, self.shape, strict=True))

    def __contains__(self, attr: object) -> bool:
        return attr in self.attrs

    def __len__(self) -> int:
        return len(self.attrs)

    def size(self, attrs: Iterable[str] | None = None) -> int:
        """Number of cells of the whole domain, or of the sub-domain over ``attrs``."""
        if attrs is None:
            return prod(self.shape)
        sizes = self.to_dict()
        return prod(sizes[a] for a in attrs)

    def check(self, attrs: Iterable[str]) -> None:
        """Raise :class:`ConfigError` if any of ``attrs`` is not in the domain."""
        missing = [a for a in attrs if a not in self.attrs]
        if missing:
            raise ConfigError(f"attributes {missing} are not in the domain {self.attrs}")

    def project(self, attrs: Iterable[str]) -> Domain:
        """The sub-domain over ``attrs``, in the order given."""
        attrs = tuple(attrs)
        self.check(attrs)
        sizes = self.to_dict()
        return Domain(attrs, tuple(sizes[a] for a in attrs))

    def canonical(self, attrs: Iterable[str]) -> tuple[str, ...]:
        """``attrs`` deduplicated and sorted in this domain's axis order."""
        wanted = set(attrs)
        self.check(wanted)
        return tuple(a for a in self.attrs if a in wanted)

    def axes(self, attrs: Iterable[str]) -> tuple[int, ...]:
        """Positions of ``attrs`` among this domain's attributes."""
        attrs = tuple(attrs)
        self.check(attrs)
        return tuple(self.attrs.index(a) for a in attrs)

    def merge(self, other: Domain) -> Domain:
        """The union of two domains: this one's attributes, then the new ones of ``other``."""
        sizes = self.to_dict()
        for attr, size in other.to_dict().items():
            if attr in sizes and sizes[attr] != size:
                raise ConfigError(f"attribute {attr!r} has sizes {sizes[attr]} and {size}")
            sizes[attr] = size
        return Domain.from_dict(sizes)
