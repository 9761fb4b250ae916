"""ROS parameters derived from the config schemas: descriptors, declaration, reading, and the YAML file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ocean_ros.core.build import DEFAULT_PRESET
from ocean_ros.core.config import ParamSpec, TrackerConfig
from ocean_ros.ros.node_config import NodeConfig

NODE_NAME = "ocean_tracker"


def descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor of one schema field: type, description, range, read-only flag."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
    }
    desc = ParameterDescriptor(
        name=spec.name,
        type=types[spec.type],
        description=spec.description,
        read_only=not spec.runtime_safe,
    )
    if spec.choices is not None:
        desc.additional_constraints = "one of: " + ", ".join(str(c) for c in spec.choices)
    if spec.range is not None and spec.type is float:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))]
    elif spec.range is not None and spec.type is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    return desc


def declare(node: Any, specs: Iterable[ParamSpec], defaults: Mapping[str, Any]) -> None:
    """Declare every spec on ``node`` with the default from ``defaults`` (falls back to the schema's)."""
    for spec in specs:
        node.declare_parameter(spec.name, defaults.get(spec.name, spec.default), descriptor(spec))


def read(node: Any, specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Current values of the declared specs."""
    return {spec.name: node.get_parameter(spec.name).value for spec in specs}


def read_configs(node: Any) -> tuple[TrackerConfig, NodeConfig]:
    """Both configurations from the node's parameters; ValueError naming unknown parameters or bad values."""
    declared = {s.name for s in (*TrackerConfig.parameters(), *NodeConfig.parameters())}
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(
        name for name in overrides
        if name not in declared and name != "use_sim_time" and not name.startswith("qos_overrides.")
    )
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}; see config/tracker.yaml for the known ones")
    return (TrackerConfig.from_dict(read(node, TrackerConfig.parameters())),
            NodeConfig.from_dict(read(node, NodeConfig.parameters())))


def tracker_defaults(preset: str) -> dict[str, Any]:
    """Declared defaults of the tracker parameters: the chosen preset's values (schema defaults if 'custom')."""
    return TrackerConfig.from_dict({"preset": preset}).to_dict()


def yaml_text(preset: str = "LITE") -> str:
    """The shipped ``config/tracker.yaml``, generated from the schemas.

    Every tracker line is a comment holding ``preset``'s values (an active line would override whatever preset
    the node picks; the preset itself defaults to the checkpoint's); node settings are active lines.
    """
    tracker_values = tracker_defaults(preset)
    lines = [
        "# Parameters of the ocean_tracker node, generated from the config schemas (ocean_ros/core/config.py,",
        "# ocean_ros/ros/node_config.py) by `python -m ocean_ros.ros.params`. Unknown keys make configuration fail.",
        "# Tracker hyper-parameters come from `preset`; uncomment a line to override that value. Left commented,",
        "# `preset` is the one stored with the checkpoint (LITE for the shipped model, whose values are shown), else",
        f"# {DEFAULT_PRESET}; set it (e.g. VOT2019, GOT10K) to suit an official TracKit checkpoint.",
        f"/**/{NODE_NAME}:",
        "  ros__parameters:",
    ]
    for spec in TrackerConfig.parameters():
        mode = "runtime" if spec.runtime_safe else "read-only"
        lines.append(f"    # {spec.description} [{mode}]")
        prefix = "# "
        lines.append(f"    {prefix}{spec.name}: {_yaml_value(tracker_values[spec.name])}")
    for spec in NodeConfig.parameters():
        mode = "runtime" if spec.runtime_safe else "read-only"
        lines.append(f"    # {spec.description} [{mode}]")
        lines.append(f"    {spec.name}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's parameter table, generated from the schemas (a test keeps the README in step)."""
    rows = ["| parameter | default | range / choices | run time | description |", "|---|---|---|---|---|"]
    for spec in (*TrackerConfig.parameters(), *NodeConfig.parameters()):
        if spec.choices is not None:
            allowed = ", ".join(f"`{c}`" for c in spec.choices)
        elif spec.range is not None:
            allowed = f"{spec.range[0]:g} … {spec.range[1]:g}"
        else:
            allowed = ""
        default = _yaml_value(spec.default).strip('"') or '""'
        rows.append(
            f"| `{spec.name}` | `{default}` | {allowed} | {'yes' if spec.runtime_safe else 'read-only'} | "
            f"{spec.description.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


README_BEGIN, README_END = "<!-- params:begin -->", "<!-- params:end -->"


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the parameter-table markers replaced by :func:`markdown_table`."""
    head, rest = readme.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{markdown_table()}{README_END}{tail}"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    targets = {root / "config" / "tracker.yaml": yaml_text, root / "README.md": None}
    stale = []
    for target in targets:
        current = target.read_text()
        wanted = yaml_text() if target.suffix == ".yaml" else readme_with_table(current)
        if current != wanted:
            stale.append(target)
            if sys.argv[1:] != ["--check"]:
                target.write_text(wanted)
                print(f"wrote {target}")
    sys.exit(1 if stale and sys.argv[1:] == ["--check"] else 0)
