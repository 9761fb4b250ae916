"""Schema dataclasses: fields that carry the metadata the ROS layer needs to declare them as parameters.

:func:`param_field` makes such a field, :func:`group_field` nests another schema dataclass, :func:`schema_of` lists
a class's :class:`ParamSpec`, :func:`check_value` validates one value against its spec. The tracker's schema is
:mod:`ocean_ros.core.config`; the ROS node's own settings use the same machinery.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ParamSpec", "check_fields", "check_value", "group_field", "param_field", "schema_of"]


@dataclass(frozen=True)
class ParamSpec:
    """Metadata of one tunable: what the ROS layer needs to declare it as a parameter.

    ``step``: the value lives in the per-frame step's parameter buffer, so it changes without a CUDA-graph
    recapture (the step reads it as a device scalar).
    """

    name: str
    type: type
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[Any, ...] | None = None
    runtime_safe: bool = False
    step: bool = False


def param_field(
    default: Any,
    description: str,
    *,
    range: tuple[float, float] | None = None,
    choices: tuple[Any, ...] | None = None,
    runtime_safe: bool = False,
    step: bool = False,
) -> Any:
    """A dataclass field carrying :class:`ParamSpec` metadata (for schema classes such as TrackerConfig)."""
    meta = {"description": description, "range": range, "choices": choices, "runtime_safe": runtime_safe,
            "step": step}
    return field(default=default, metadata=meta)


def group_field(group: type) -> Any:
    """A dataclass field holding a nested schema dataclass (its own fields carry the metadata)."""
    return field(default_factory=group, metadata={"description": group.__doc__, "group": True})


def schema_of(cls: type, prefix: str = "") -> tuple[ParamSpec, ...]:
    """The :class:`ParamSpec` of every field of a dataclass built with :func:`param_field` (named
    ``prefix + field``), in order; a :func:`group_field` appears as one spec whose type is the group's."""
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("group"):
            specs.append(ParamSpec(prefix + f.name, f.default_factory, None, meta["description"]))  # type: ignore[arg-type]
            continue
        specs.append(
            ParamSpec(
                name=prefix + f.name,
                type=type(f.default),
                default=f.default,
                description=meta["description"],
                range=meta["range"],
                choices=meta["choices"],
                runtime_safe=meta["runtime_safe"],
                step=meta.get("step", False),
            )
        )
    return tuple(specs)


def check_value(spec: ParamSpec, value: Any) -> Any:
    """Type- and range-check one value against its spec (ValueError naming the field and the reason).

    Ints are accepted for float fields and returned as float; bools are never taken for numbers.
    """
    name = spec.name
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    elif spec.type is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, spec.choices))}")
    if spec.range is not None:
        low, high = spec.range
        if not low <= value <= high:
            raise ValueError(f"{name}={value!r} is outside the allowed range [{low}, {high}]")
    return value


def check_fields(obj: Any, specs: Iterable[ParamSpec]) -> None:
    """Validate and normalise (ints to float) the fields of a frozen schema dataclass named by ``specs``."""
    for spec in specs:
        field_name = spec.name.rpartition(".")[2]
        object.__setattr__(obj, field_name, check_value(spec, getattr(obj, field_name)))
