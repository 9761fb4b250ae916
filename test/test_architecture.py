"""The ROS-free core stays ROS-free: statically (its imports) and at run time (a fresh interpreter)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO_ROOT, modules_loaded_by_importing

CORE = REPO_ROOT / "ocean_ros" / "core"
ALLOWED_THIRD_PARTY = {"torch", "numpy", "cv2"}
# Optional graph runtimes: loaded on demand by the one backends module (never by an import statement), so a core
# without them installed still imports and runs the torch backend.
OPTIONAL_RUNTIMES = {"onnxruntime", "openvino", "tensorrt", "onnx"}
BACKENDS_MODULE = CORE / "backends.py"
ROS_MODULE_PREFIXES = ("rclpy", "rosidl", "sensor_msgs", "std_msgs", "vision_msgs", "ocean_ros_msgs", "rosbags")


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module a file imports (relative imports count as 'ocean_ros')."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("ocean_ros" if node.level else (node.module or "").split(".")[0])
    return roots


def test_core_imports_only_torch_numpy_cv2_and_stdlib():
    offenders = {}
    for path in sorted(CORE.rglob("*.py")):
        bad = {
            name for name in imported_roots(path)
            if name not in ALLOWED_THIRD_PARTY and name != "ocean_ros" and name not in sys.stdlib_module_names
        }
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert not offenders, offenders


def test_core_does_not_import_the_ros_layer():
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith(
                    ("ocean_ros.ros", "ocean_ros.follow", "ocean_ros.eval", "ocean_ros.train")
                ), path


def test_training_is_ros_free():
    """ocean_ros.train may use the core and the eval readers, never the ROS layer."""
    for path in sorted((REPO_ROOT / "ocean_ros" / "train").rglob("*.py")):
        roots = imported_roots(path)
        assert not roots & {"rclpy", "rosidl_runtime_py", "sensor_msgs", "vision_msgs"}, path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith(("ocean_ros.ros", "ocean_ros.follow")), path


def core_modules() -> list[str]:
    """Dotted names of every module and package under ocean_ros/core."""
    names = []
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def test_importing_core_in_a_fresh_interpreter_loads_no_ros():
    loaded = modules_loaded_by_importing(core_modules())
    assert "ocean_ros.core" in loaded
    ros = [name for name in loaded if name.startswith(ROS_MODULE_PREFIXES)]
    assert ros == [], f"importing the core loaded ROS modules: {ros}"


def test_graph_runtimes_are_loaded_only_on_demand_by_the_backends_module():
    """No core file imports a graph runtime; only core/backends.py loads modules by name, and only those in its
    package table; a fresh interpreter importing the whole core loads none of them."""
    from ocean_ros.core.backends import PACKAGES

    dynamic = [str(p.relative_to(REPO_ROOT)) for p in sorted(CORE.rglob("*.py"))
               if p != BACKENDS_MODULE and ("import_module(" in p.read_text() or "__import__(" in p.read_text())]
    assert dynamic == [], f"dynamic imports outside {BACKENDS_MODULE.name}: {dynamic}"
    assert set(PACKAGES.values()) <= OPTIONAL_RUNTIMES
    loaded = modules_loaded_by_importing(core_modules())
    runtimes = [name for name in loaded if name.split(".")[0] in OPTIONAL_RUNTIMES]
    assert runtimes == [], f"importing the core loaded graph runtimes: {runtimes}"
