"""Build a colcon workspace holding this repository exactly as the README tells a ROS user, then run from it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.colcon]


def readme_block(marker: str) -> list[str]:
    """Shell lines of the README code block that follows the HTML comment ``<!-- marker -->``."""
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert match, f"README has no code block marked <!-- {marker} -->"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


def copy_repository(dest: Path) -> None:
    """Copy the tracked and untracked-not-ignored files, as a clone would hold them."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listing):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_colcon_build_from_readme_and_run_console_script(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists() and shutil.which("colcon") is None:
        pytest.skip("colcon not installed (pip install colcon-common-extensions; scripts/setup_env.py does)")
    build_lines = readme_block("colcon-build")
    run_lines = readme_block("colcon-run")

    workspace = tmp_path / "ocean_ws"
    copy_repository(workspace / "src" / "ocean_ros")

    # Stand-in for `source /opt/ros/<distro>/setup.bash`: the ROS prefix of the pip wheels is this venv.
    prefix = str(Path(sys.prefix))
    env = dict(os.environ)
    env.update(AMENT_PREFIX_PATH=prefix, CMAKE_PREFIX_PATH=prefix, VIRTUAL_ENV=prefix)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)

    for line in build_lines:
        if line.startswith(("source /opt/ros", "cd ", "mkdir", "git clone", "rosdep", "pip", "sudo")):
            continue  # steps of a real install that the stand-in above replaces
        result = subprocess.run(
            ["bash", "-c", line], cwd=workspace, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert "Summary: 2 packages finished" in result.stdout, result.stdout[-2000:]

    install = workspace / "install"
    assert (install / "ocean_ros_msgs" / "share" / "ocean_ros_msgs" / "msg" / "TrackerStatus.msg").exists()
    assert (install / "ocean_ros" / "share" / "ocean_ros" / "package.xml").exists()
    assert (install / "ocean_ros" / "share" / "ocean_ros" / "config" / "fastdds_loopback.xml").exists()

    script = "; ".join(
        line if not line.startswith("source /opt/ros") else ":" for line in run_lines
    )
    result = subprocess.run(
        ["bash", "-c", f"set -e; {script}"], cwd=workspace, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["ocean_ros_location"].startswith(str(workspace)), facts
    # symlink-install: the generated Python package resolves into build/, inside the workspace either way
    assert str(facts["ocean_ros_msgs_location"]).startswith(str(workspace)), json.dumps(facts)
    assert facts["vision_msgs.msg"] != "MISSING"
    assert shlex.split(run_lines[-1])[0].startswith("install/ocean_ros/lib/ocean_ros/")
