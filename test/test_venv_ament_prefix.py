"""The venv that scripts/setup_env.py builds is an ament prefix that ROS tools understand.

What ``ros2 launch`` and ``launch_ros`` rely on is checked directly: a share folder whose files are found by a walk
that does not follow folder links, executables in ``<prefix>/lib/ocean_ros/``, the resource index marker, and
``scripts/env.sh`` setting ``AMENT_PREFIX_PATH`` and the DDS variables. Then ``ros2 launch`` itself runs from the
venv: launch, launch_ros and ros2cli are not on PyPI, and setup_env.py installs them from the shared folder's
``wheels/ros2-launch/``; without that folder the test skips (fails under ``OCEAN_ROS_REQUIRE_DATA=1``, as CI runs).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, need_path
from launch_ast import calls, console_scripts, declared_arguments, keyword

PREFIX = Path(sys.prefix).resolve()
PACKAGE = "ocean_ros"
ENV_SH = REPO_ROOT / "scripts" / "env.sh"


def installed_data_files() -> dict[str, Path]:
    """{path under the prefix: repository file} as setup.py's data_files declare them."""
    import setuptools

    captured: dict = {}
    original = setuptools.setup
    cwd = os.getcwd()
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        os.chdir(REPO_ROOT)
        runpy.run_path(str(REPO_ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return {f"{target}/{Path(src).name}": REPO_ROOT / src for target, srcs in captured["data_files"] for src in srcs}


def setup_env_module():
    spec = importlib.util.spec_from_file_location("setup_env", REPO_ROOT / "scripts" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_env_sh(code: str, env: dict[str, str], sources: int = 1) -> dict:
    """Run ``code`` (Python printing one JSON line) after sourcing scripts/env.sh ``sources`` times, in bash."""
    source = " && ".join([f"source {ENV_SH}"] * sources)
    result = subprocess.run(
        ["bash", "-c", f"{source} && python -c {json.dumps(code)}"], cwd="/", env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the package facts ros2launch / launch_ros need --------------------------------------------------------


def test_share_files_are_found_by_a_walk_that_does_not_follow_folder_links():
    """ros2launch finds `tracker.launch.py` by os.walk over the share folder, which skips linked folders."""
    share = PREFIX / "share" / PACKAGE
    found: dict[str, list[Path]] = {}
    for current, dirs, files in os.walk(share):  # followlinks=False, as ros2launch walks
        for name in dirs:
            assert not (Path(current) / name).is_symlink(), f"{Path(current) / name} is a folder link"
        for name in files:
            found.setdefault(name, []).append(Path(current) / name)
    expected = {rel: src for rel, src in installed_data_files().items() if rel.startswith(f"share/{PACKAGE}/")}
    assert "share/ocean_ros/launch/tracker.launch.py" in expected
    for rel, source in expected.items():
        path = PREFIX / rel
        assert path in found.get(path.name, []), f"{rel} not found by the walk (run scripts/setup_env.py)"
        assert path.read_bytes() == source.read_bytes(), f"{rel} is not the working tree's {source}"
    launch_files = [name for name in found if name.endswith(".launch.py")]
    assert all(len(found[name]) == 1 for name in launch_files), "a launch file name is ambiguous"
    stale = [str(p) for paths in found.values() for p in paths if str(p.relative_to(PREFIX)) not in expected]
    assert not stale, f"share files setup.py does not install: {stale}"


def test_every_console_script_is_an_executable_in_the_package_libexec_folder():
    """launch_ros (Node, LifecycleNode) and `ros2 run` look for executables in <prefix>/lib/<package>/."""
    libexec = PREFIX / "lib" / PACKAGE
    assert libexec.is_dir(), f"{libexec} does not exist (run scripts/setup_env.py)"
    wanted = console_scripts()
    for name in wanted:
        path = libexec / name
        assert path.is_file() and os.access(path, os.X_OK), f"{path} is not an executable file"
        assert path.resolve() == (PREFIX / "bin" / name).resolve()
    assert {p.name for p in libexec.iterdir()} == wanted, "stale executables in lib/ocean_ros"
    for launch_file in (REPO_ROOT / "launch").glob("*.launch.py"):
        for node in calls(ast.parse(launch_file.read_text()), "Node") + calls(
            ast.parse(launch_file.read_text()), "LifecycleNode"
        ):
            executable = ast.literal_eval(keyword(node, "executable"))
            assert (libexec / executable).is_file(), f"{launch_file.name} starts {executable}: not in {libexec}"


def test_resource_index_marker_and_env_sh_make_the_package_findable():
    marker = PREFIX / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), f"{marker} missing: the ament index does not know {PACKAGE}"
    code = (
        "import json, os; from ament_index_python.packages import get_package_prefix, get_package_share_directory;"
        f" print(json.dumps({{'prefix': get_package_prefix('{PACKAGE}'), "
        f"'share': get_package_share_directory('{PACKAGE}'), 'env': dict(os.environ)}}))"
    )
    names = ("AMENT_PREFIX_PATH", "FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION",
             "ROS_AUTOMATIC_DISCOVERY_RANGE", "VIRTUAL_ENV")
    bare = {k: v for k, v in os.environ.items() if k not in names and k != "ROS_DOMAIN_ID"}
    facts = in_env_sh(code, bare, sources=2)  # twice: nothing doubles
    assert Path(facts["prefix"]).resolve() == PREFIX
    assert Path(facts["share"]).resolve() == PREFIX / "share" / PACKAGE
    env = facts["env"]
    assert env["AMENT_PREFIX_PATH"] == str(PREFIX)
    assert env["VIRTUAL_ENV"] == str(PREFIX)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(REPO_ROOT / "config" / "fastdds_loopback.xml")
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_DOMAIN_ID" not in env, "env.sh must not choose a domain"
    surprising = set(env) - set(bare) - set(names) - {"PS1", "VIRTUAL_ENV_PROMPT", "PATH", "_"}
    assert not surprising, f"env.sh sets more than it says: {sorted(surprising)}"
    info = in_env_sh("from ocean_ros.tools.info import collect; import json; print(json.dumps(collect()))", bare)
    assert info["ament"]["ocean_ros_share"] == str(PREFIX / "share" / PACKAGE), "ocean_info reports the ament share"

    # what the caller set wins (here: the test run's loopback settings); other prefixes are kept, after the venv
    preset = dict(os.environ, AMENT_PREFIX_PATH="/opt/elsewhere", ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    env = in_env_sh("import json, os; print(json.dumps(dict(os.environ)))", preset)
    assert env["AMENT_PREFIX_PATH"] == f"{PREFIX}:/opt/elsewhere"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert env["ROS_DOMAIN_ID"] == os.environ["ROS_DOMAIN_ID"]


def test_env_sh_refuses_a_missing_venv_without_leaving_the_shell(tmp_path):
    fake = tmp_path / "repo"
    (fake / "scripts").mkdir(parents=True)
    shutil.copy(ENV_SH, fake / "scripts" / "env.sh")
    result = subprocess.run(
        ["bash", "-c", f"source {fake / 'scripts' / 'env.sh'}; echo rc=$? still-here"],
        capture_output=True, text=True, timeout=30,
    )
    assert "rc=1 still-here" in result.stdout
    assert "setup_env.py" in result.stderr


def test_setup_lays_out_the_prefix_in_step_with_the_repository(tmp_path):
    """Old whole-folder links become per-file links, stale entries go, a second run changes nothing."""
    setup_env = setup_env_module()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in console_scripts():
        (venv / "bin" / name).write_text("#!/bin/sh\n")
        (venv / "bin" / name).chmod(0o755)
    share = venv / "share" / PACKAGE
    share.mkdir(parents=True)
    (share / "launch").symlink_to(REPO_ROOT / "launch")  # what earlier set-ups made
    (venv / "lib" / PACKAGE).mkdir(parents=True)
    (venv / "lib" / PACKAGE / "retired_tool").symlink_to(venv / "bin" / "ocean_info")
    (share / "config").mkdir()
    (share / "config" / "renamed.yaml").write_text("old\n")
    repo_launch = sorted(p.name for p in (REPO_ROOT / "launch").iterdir())

    summary = setup_env.install_ament_prefix(venv, Path(sys.executable))
    assert sorted(p.name for p in (REPO_ROOT / "launch").iterdir()) == repo_launch, "wrote into the repository"
    assert not (share / "launch").is_symlink() and (share / "launch").is_dir()
    for rel, source in installed_data_files().items():
        assert (venv / rel).is_symlink() and (venv / rel).resolve() == source.resolve(), rel
    assert not (share / "config" / "renamed.yaml").exists()
    assert sorted(p.name for p in (venv / "lib" / PACKAGE).iterdir()) == sorted(console_scripts())
    assert "stale removed" in summary
    assert "(0 updated, 0 stale removed)" in setup_env.install_ament_prefix(venv, Path(sys.executable))


def test_launch_wheels_are_looked_for_beside_the_data_folder(monkeypatch, tmp_path):
    """One definition: the shared folder is the data root's parent (OCEAN_ROS_DATA, else ../shared/data)."""
    setup_env = setup_env_module()
    monkeypatch.setenv("OCEAN_ROS_DATA", str(tmp_path / "data"))
    assert setup_env.launch_wheels_dir() == tmp_path / "wheels" / "ros2-launch"
    monkeypatch.delenv("OCEAN_ROS_DATA")
    assert setup_env.launch_wheels_dir() == REPO_ROOT.parent / "shared" / "wheels" / "ros2-launch"
    (tmp_path / "wheels").mkdir()
    with pytest.raises(setup_env.SetupError, match="composition_interfaces"):  # before anything is installed
        setup_env.install_launch_tools(tmp_path / "wheels", tmp_path / "venv", Path(sys.executable))


# --- end to end: ros2 launch from the venv -----------------------------------------------------------------


def launch_tools_missing() -> str | None:
    """Why `ros2 launch` cannot run from this venv, or None when it can."""
    for module in ("launch_ros", "launch", "ros2launch"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin in (None, "namespace"):  # the repository's launch/ folder is no package
            return f"{module} is not importable in {PREFIX}"
    if not (PREFIX / "bin" / "ros2").exists():
        return f"no `ros2` command (ros2cli) in {PREFIX / 'bin'}"
    return None


def need_launch_tools() -> None:
    """Skip when neither this venv nor the shared folder has ROS 2 launch (a failure under
    OCEAN_ROS_REQUIRE_DATA=1); fail when the shared wheels are there but not installed."""
    missing = launch_tools_missing()
    if missing is None:
        return
    wheels = setup_env_module().launch_wheels_dir()
    need_path(wheels, (
        f"{missing}, and the ROS 2 launch wheels {wheels} are not there (launch, launch_ros and ros2cli are not "
        "on PyPI): with the project's shared folder beside the repository (or OCEAN_ROS_DATA in it), "
        "scripts/setup_env.py installs them; see README '`ros2 launch` without a ROS install'"
    ))
    pytest.fail(f"{missing}, though {wheels} holds the launch wheels: run scripts/setup_env.py")


@pytest.mark.parametrize("launch_name", sorted(p.name for p in (REPO_ROOT / "launch").glob("*.launch.py")))
def test_ros2_launch_loads_every_launch_file_and_shows_its_arguments(launch_name):
    """The real front end imports and evaluates each file, which the syntax-tree tests cannot."""
    need_launch_tools()
    result = subprocess.run(
        ["bash", "-c", f"source {ENV_SH} && exec ros2 launch {PACKAGE} {launch_name} --show-args"],
        cwd="/", capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = set(re.findall(r"^\s+'([^']+)':$", result.stdout, re.M))
    assert shown == declared_arguments(ast.parse((REPO_ROOT / "launch" / launch_name).read_text()))


@pytest.mark.slow
def test_ros2_launch_from_the_venv_brings_the_node_to_active_and_a_detection_back(
    tmp_path, node_process, ros_session
):
    need_launch_tools()
    import numpy as np
    from lifecycle_msgs.srv import GetState
    from tracker_harness import TrackerHarness, stamp_ns

    params = tmp_path / "params.yaml"
    shipped = any((REPO_ROOT / "ocean_ros" / "models").glob("*.pth"))  # the node's default model, once shipped
    weights = "" if shipped else "    allow_random_weights: true\n"
    params.write_text(f"/**:\n  ros__parameters:\n{weights}    device: cpu\n")
    namespace = "launch_test"
    command = (
        f"source {ENV_SH} && exec ros2 launch {PACKAGE} tracker.launch.py "
        f"params_file:={params} namespace:={namespace}"
    )
    process = node_process(["bash", "-c", command])
    harness = TrackerHarness(ros_session("launch_probe"), f"/{namespace}")
    get_state = harness.session.node.create_client(GetState, f"/{namespace}/ocean_tracker/get_state")
    if not get_state.wait_for_service(timeout_sec=120):
        pytest.fail(f"the launched node never offered get_state:\n{process.tail()}")
    deadline = time.monotonic() + 120
    label = ""
    while time.monotonic() < deadline and label != "active":
        label = harness.call(get_state, GetState.Request(), 10).current_state.label
        time.sleep(0.2)
    assert label == "active", process.tail()
    harness.wait_ready()

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    first = harness.publish_and_wait(scene)
    assert harness.init_service(stamp_ns(first.header.stamp), (140.0, 100.0, 40.0, 40.0)).accepted
    after = harness.publish_and_wait(scene)
    arrays = harness.detections.wait_for(
        1, 30, lambda ms: any(stamp_ns(m.header.stamp) == stamp_ns(after.header.stamp) for m in ms)
    )
    (array,) = [m for m in arrays if stamp_ns(m.header.stamp) == stamp_ns(after.header.stamp)]
    assert len(array.detections) == 1, "the first frame after an init is TRACKING: one detection"
    assert process.stop() is not None
