"""The mechanism registry: one name, one object that plans, fits and states its guarantee.

A mechanism is an object satisfying :class:`Mechanism`. ``plan`` works from public inputs
alone (schema, budget, options) and is what ``dpsynth plan`` prints; ``fit`` reads private
data only through the gate it is handed. :func:`dpsynth.api.fit`, :func:`dpsynth.release`,
:func:`dpsynth.mechanisms.plan.plan_fit` and the CLI look mechanisms up here by name, so a
new mechanism is one module plus a :func:`register` call (see CONTRIBUTING.md).

The built-in mechanisms are registered by ``dpsynth/mechanisms/__init__.py`` when the
package is first imported; the neural ones import torch only when they fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dpsynth.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.gate import PrivateData
    from dpsynth.privacy.guarantee import PrivacyStatement
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = [
    "Constraints",
    "Mechanism",
    "MechanismPlan",
    "ModelSize",
    "get",
    "names",
    "register",
    "register_lazy",
    "resolve_config",
    "unregister",
]

#: The schema's forbidden value combinations, as codes (see ``dpsynth.api.schema_constraints``).
Constraints = Sequence[dict[str, "int | Sequence[int]"]]


@dataclass(frozen=True)
class ModelSize:
    """How large a fit's model and count caches get, from public sizes only.

    Attributes:
        model_cells: Cells of the model a typical fit builds.
        model_cells_bound: Cells of the largest model the mechanism may build.
        count_cells: Exact counts the counting engine and the gate hold at once.
        plan_cells: The model size the plan reports (``max_model_cells`` of the plan).
        refuse_on_bound: Refuse the plan when the *bound* (not the typical size) is over the
            memory cap (True for mechanisms whose model size is fixed in advance).
        largest: The largest single marginal the model must hold, ``(columns, cells)``; a
            plan refuses it alone if it is over the memory cap, naming the columns.
    """

    model_cells: int
    model_cells_bound: int
    count_cells: int
    plan_cells: int
    refuse_on_bound: bool = True
    largest: tuple[tuple[str, ...], int] | None = None


@dataclass(frozen=True)
class MechanismPlan:
    """A mechanism's planned steps (public): measurements with their noise scales, and notes."""

    measurements: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Mechanism(Protocol):
    """What the library needs from a mechanism.

    Attributes:
        name: The registry name (``--mechanism``).
        config_type: The options dataclass (``None``: the mechanism takes no options).
        reads_data: False for a mechanism that reads no private data and spends nothing.
        needs_approx_dp: True if it needs an (epsilon, delta) budget (DP-SGD has no finite
            zCDP cost).
    """

    name: str
    reads_data: bool
    needs_approx_dp: bool

    @property
    def config_type(self) -> type[Any] | None:
        """The options dataclass, or ``None``."""
        ...

    def plan(self, schema: Schema, rho: float, config: Any) -> MechanismPlan:
        """Planned measurements (noise scales) and notes for budget ``rho``: public inputs only."""
        ...

    def size(self, schema: Schema, config: Any) -> ModelSize:
        """Model and count-cache sizes from public sizes only."""
        ...

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: Any,
            key: MechanismKey, constraints: Constraints, delta: float) -> Any:
        """Fit through ``gate`` (``None`` when ``reads_data`` is False), spending ``rho``.

        Returns a :class:`~dpsynth.mechanisms.base.MarginalFit` (a graphical model) or a
        :class:`~dpsynth.neural.io.NeuralModel`.
        """
        ...

    def statement(self, result: Any) -> PrivacyStatement:
        """The privacy statement of a fit's result."""
        ...


_REGISTRY: dict[str, Mechanism | tuple[str, str, tuple[Any, ...]]] = {}


def register_lazy(name: str, module: str, factory: str, *args: Any) -> None:
    """Register ``name`` as ``module.factory(*args)``, imported on the first :func:`get`.

    The built-in mechanisms are registered this way so that a command touching one mechanism
    (or none: ``sample``) does not import the others' modules.
    """
    if not name.isidentifier():
        raise ConfigError(f"mechanism name {name!r} must be an identifier (letters, digits, _)")
    _REGISTRY[name] = (module, factory, args)


def register(mechanism: Mechanism, *, replace: bool = False) -> Mechanism:
    """Add ``mechanism`` under its name; return it (so it can decorate an instance).

    Raises:
        ConfigError: The object is not a mechanism, its name is not an identifier, or the name
            is taken (pass ``replace=True`` to replace it on purpose).
    """
    if not isinstance(mechanism, Mechanism):
        raise ConfigError(f"{type(mechanism).__name__} does not implement the Mechanism protocol "
                          "(name, config_type, reads_data, needs_approx_dp, plan, size, fit, statement)")
    name = mechanism.name
    if not name.isidentifier():
        raise ConfigError(f"mechanism name {name!r} must be an identifier (letters, digits, _)")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"mechanism {name!r} is already registered")
    _REGISTRY[name] = mechanism
    return mechanism


def unregister(name: str) -> None:
    """Remove ``name`` (tests and plug-ins that clean up after themselves)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Mechanism:
    """The mechanism registered as ``name``.

    Raises:
        ConfigError: Unknown name; the message lists the registered names.
    """
    try:
        entry = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"mechanism {name!r} must be one of {list(_REGISTRY)}") from None
    if isinstance(entry, tuple):
        module, factory, args = entry
        # __import__ rather than importlib.import_module: -X importtime then lists the module
        made = getattr(__import__(module, fromlist=[factory]), factory)(*args)
        if made.name != name:
            raise ConfigError(f"{module}.{factory} builds mechanism {made.name!r}, registered as {name!r}")
        entry = register(made, replace=True)
    return entry


def names() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return tuple(_REGISTRY)


def resolve_config(mechanism: Mechanism, options: object | None) -> Any:
    """``options`` checked against the mechanism's ``config_type``, or its default config.

    Raises:
        ConfigError: Options of the wrong type, or options for a mechanism that takes none.
    """
    kind = mechanism.config_type
    if options is None:
        return None if kind is None else kind()
    if kind is None:
        raise ConfigError(f"mechanism {mechanism.name!r} takes no options (got {type(options).__name__})")
    if not isinstance(options, kind):
        raise ConfigError(f"options of mechanism {mechanism.name!r} must be a {kind.__name__}, "
                          f"not {type(options).__name__}")
    return options
