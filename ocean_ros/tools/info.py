"""``ocean_info``: report what this installation of ocean_ros can use (versions, devices, interfaces, DDS)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

DDS_VARIABLES = (
    "ROS_DOMAIN_ID",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_LOCALHOST_ONLY",
    "RMW_IMPLEMENTATION",
    "FASTDDS_DEFAULT_PROFILES_FILE",
)


def _module_version(name: str) -> str | None:
    """Version string of an importable module, 'present' if it has none, None if it does not import."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None
    return str(getattr(module, "__version__", "present"))


def _module_location(name: str) -> str | None:
    """Folder a package is imported from (which overlay wins), or None."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return None
    return str(Path(module.__file__).resolve().parent) if getattr(module, "__file__", None) else None


def collect() -> dict[str, object]:
    """Gather the facts printed by the tool."""
    import ocean_ros

    facts: dict[str, object] = {
        "ocean_ros": ocean_ros.__version__,
        "ocean_ros_location": str(Path(ocean_ros.__file__).resolve().parent),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ros_distro": os.environ.get("ROS_DISTRO", "(unset: pip wheels or unsourced install)"),
    }
    for name in ("torch", "numpy", "cv2", "rclpy", "ocean_ros_msgs.msg", "vision_msgs.msg", "rosbags"):
        facts[name] = _module_version(name) or "MISSING"
    for name in ("ocean_ros_msgs", "vision_msgs"):
        facts[f"{name}_location"] = _module_location(name)
    for name in ("onnx", "onnxruntime", "openvino", "tensorrt"):  # network backends (TrackerConfig.backend)
        facts[name] = _module_version(name) or "not installed"
    try:
        import torch

        facts["cuda_available"] = torch.cuda.is_available()
        facts["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        facts["cuda_available"] = False
    facts["dds"] = {key: os.environ.get(key) for key in DDS_VARIABLES}
    facts["ament"] = _ament_facts()
    return facts


def _ament_facts() -> dict[str, object]:
    """Where ROS tools (ros2 launch, ros2 run) find ocean_ros: the prefix path and the package's share folder."""
    facts: dict[str, object] = {"AMENT_PREFIX_PATH": os.environ.get("AMENT_PREFIX_PATH")}
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        facts["ocean_ros_share"] = "MISSING (ament_index_python not importable)"
        return facts
    try:
        facts["ocean_ros_share"] = get_package_share_directory("ocean_ros")
    except (LookupError, OSError, ValueError) as err:  # not in the index; no AMENT_PREFIX_PATH
        facts["ocean_ros_share"] = f"MISSING ({type(err).__name__}: {err}; source scripts/env.sh or install/setup.bash)"
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocean_info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    facts = collect()
    if args.json:
        print(json.dumps(facts))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key:<{width}}  {value}")
    required = ("torch", "numpy", "cv2")
    return 1 if any(facts[name] == "MISSING" for name in required) else 0


if __name__ == "__main__":
    sys.exit(main())
