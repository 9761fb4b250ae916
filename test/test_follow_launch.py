"""Structure of the follower launch files and parameter files, from their syntax tree (the real `ros2 launch`
loads them in test_venv_ament_prefix.py where the venv has it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from launch_ast import calls, console_scripts, keyword

LAUNCH_FILES = {
    "follow_pan_tilt.launch.py": ("pan_tilt_follower", "follow_pan_tilt.yaml"),
    "follow_drone.launch.py": ("drone_follower", "follow_drone.yaml"),
}


@pytest.mark.parametrize("launch_name", sorted(LAUNCH_FILES))
def test_launch_file_starts_the_tracker_and_the_follower_from_registered_console_scripts(launch_name):
    tree = ast.parse((REPO_ROOT / "launch" / launch_name).read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    nodes = calls(tree, "Node")
    executables = {ast.literal_eval(keyword(node, "executable")) for node in nodes}
    assert {ast.literal_eval(keyword(node, "package")) for node in nodes} == {"ocean_ros"}
    follower, _ = LAUNCH_FILES[launch_name]
    assert executables == {"ocean_tracker", follower}
    assert executables <= console_scripts()
    names = {ast.literal_eval(keyword(node, "name")) for node in nodes}
    assert names == executables  # node names match the keys of the parameter files


@pytest.mark.parametrize("launch_name", sorted(LAUNCH_FILES))
def test_launch_file_references_existing_files(launch_name):
    tree = ast.parse((REPO_ROOT / "launch" / launch_name).read_text())
    shares = [ast.literal_eval(c.args[0]) for c in calls(tree, "get_package_share_directory")]
    assert shares == ["ocean_ros"]
    referenced = [[ast.literal_eval(arg) for arg in c.args[1:]] for c in calls(tree, "join")]
    assert ["config", LAUNCH_FILES[launch_name][1]] in referenced
    for parts in referenced:
        path = REPO_ROOT.joinpath(*parts)
        assert path.is_file(), f"{launch_name} references {path.relative_to(REPO_ROOT)}, which does not exist"


@pytest.mark.parametrize("launch_name", sorted(LAUNCH_FILES))
def test_launch_remappings_name_topics_the_nodes_use(launch_name):
    tree = ast.parse((REPO_ROOT / "launch" / launch_name).read_text())
    sources = "".join(path.read_text() for path in (REPO_ROOT / "ocean_ros" / "follow").glob("*_node.py"))
    sources += (REPO_ROOT / "ocean_ros" / "follow" / "node_common.py").read_text()
    for node in calls(tree, "Node"):
        if ast.literal_eval(keyword(node, "executable")) == "ocean_tracker":
            continue
        for pair in keyword(node, "remappings").elts:
            topic = ast.literal_eval(pair.elts[0])
            assert f'"{topic}"' in sources, f"{launch_name} remaps {topic!r}, which no follower node uses"


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@pytest.mark.parametrize(
    ("config_name", "node_name", "module"),
    [("follow_pan_tilt.yaml", "pan_tilt_follower", "pan_tilt_node"),
     ("follow_drone.yaml", "drone_follower", "drone_node")],
)
def test_parameter_files_set_only_declared_parameters_with_their_types(config_name, node_name, module):
    pytest.importorskip("rclpy", reason="ROS 2 rclpy not importable")
    import importlib

    declared = {p.name: p for p in importlib.import_module(f"ocean_ros.follow.{module}").PARAMS}
    document = yaml.safe_load(Path(REPO_ROOT / "config" / config_name).read_text())
    assert list(document) == [f"/**/{node_name}"]
    values = flatten(document[f"/**/{node_name}"]["ros__parameters"])
    assert set(values) <= set(declared), f"undeclared: {sorted(set(values) - set(declared))}"
    for name, value in values.items():
        param = declared[name]
        assert type(value) is type(param.default), f"{name}: {value!r} is not a {type(param.default).__name__}"
        if param.low is not None and not isinstance(value, (str, bool)):
            assert param.low <= value <= param.high, f"{name}={value} outside [{param.low}, {param.high}]"
    assert set(declared) - set(values) <= {"use_sim_time"}, "the shipped file lists every parameter"
