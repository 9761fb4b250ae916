"""tracker.launch.py structure, the generated parameter file, and the parameter descriptors (no ROS graph)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from launch_ast import calls, console_scripts, keyword, launch_arguments

from ocean_ros.core.config import TrackerConfig
from ocean_ros.ros.node_config import NodeConfig

LAUNCH = REPO_ROOT / "launch" / "tracker.launch.py"


def test_launch_starts_the_installed_lifecycle_node_with_documented_arguments():
    tree = ast.parse(LAUNCH.read_text())
    (node,) = calls(tree, "LifecycleNode")
    executable = ast.literal_eval(keyword(node, "executable"))
    assert ast.literal_eval(keyword(node, "package")) == "ocean_ros"
    assert executable in console_scripts()
    assert (Path(sys.executable).parent / executable).exists(), "console script not installed (run setup_env.py)"
    assert ast.literal_eval(keyword(node, "name")) == "ocean_tracker"
    arguments = launch_arguments(tree)
    assert set(arguments) == {"params_file", "image", "namespace", "checkpoint", "device"}
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Launch"):]
    for name in arguments:
        assert f"`{name}`" in section, f"launch argument {name} is not documented in the README"


def test_launch_references_existing_files():
    tree = ast.parse(LAUNCH.read_text())
    assert [ast.literal_eval(c.args[0]) for c in calls(tree, "get_package_share_directory")] == ["ocean_ros"]
    for call in calls(tree, "join"):
        parts = [ast.literal_eval(arg) for arg in call.args[1:]]
        assert REPO_ROOT.joinpath(*parts).is_file(), parts
    data_files = (REPO_ROOT / "setup.py").read_text()
    assert 'glob("launch/*.py")' in data_files and 'glob("config/*.yaml")' in data_files


def test_shipped_yaml_is_generated_from_the_schemas():
    from ocean_ros.ros.params import yaml_text

    assert (REPO_ROOT / "config" / "tracker.yaml").read_text() == yaml_text(), (
        "config/tracker.yaml is stale: run `python -m ocean_ros.ros.params`"
    )


def test_yaml_names_every_parameter_and_its_active_keys_configure():
    text = (REPO_ROOT / "config" / "tracker.yaml").read_text()
    names = {spec.name for spec in (*TrackerConfig.parameters(), *NodeConfig.parameters())}
    mentioned = set(re.findall(r"^\s+#? ?([\w.]+): ", text, re.M))
    assert names <= mentioned
    (values,) = [v["ros__parameters"] for v in yaml.safe_load(text).values()]
    tracker_keys = {s.name for s in TrackerConfig.parameters()}
    TrackerConfig.from_dict({k: v for k, v in values.items() if k in tracker_keys})
    NodeConfig.from_dict({k: v for k, v in values.items() if k not in tracker_keys})


def test_descriptors_carry_description_range_and_read_only_flag():
    pytest.importorskip("rcl_interfaces", reason="ROS 2 interfaces not importable: run scripts/setup_env.py")
    from ocean_ros.ros.params import descriptor

    for spec in (*TrackerConfig.parameters(), *NodeConfig.parameters()):
        desc = descriptor(spec)
        assert desc.description == spec.description and desc.read_only == (not spec.runtime_safe)
        if spec.range is not None:
            bounds = desc.floating_point_range or desc.integer_range
            assert (bounds[0].from_value, bounds[0].to_value) == pytest.approx(spec.range), spec.name
        if spec.choices is not None:
            assert all(str(c) in desc.additional_constraints for c in spec.choices)


def test_node_config_rejects_unknown_keys_and_bad_devices():
    with pytest.raises(ValueError, match="unknown node setting"):
        NodeConfig.from_dict({"ring_sise": 3})
    for device in ("gpu", "cuda:x", "cuda0"):
        with pytest.raises(ValueError, match="device"):
            NodeConfig(device=device)
    assert NodeConfig(device="cuda:1").device == "cuda:1"
    with pytest.raises(ValueError, match="ring_size"):
        NodeConfig(ring_size=0)


def test_readme_parameter_table_is_generated_from_the_schemas():
    from ocean_ros.ros.params import readme_with_table

    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == readme_with_table(readme), "README parameter table is stale: run `python -m ocean_ros.ros.params`"
