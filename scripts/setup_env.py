#!/usr/bin/env python3
"""Turn a machine without a ROS install into a working ocean_ros environment in ``.venv``.

Steps (each skipped when its inputs are unchanged, so a second run on a ready machine takes seconds):
  1. check the tools the interface builds need (Python >= 3.10 with headers, cmake, a C and C++ compiler);
  2. create ``.venv`` and install ``requirements.txt`` (ROS 2 Kilted wheels, torch, OpenCV, test tools);
  3. repair the ROS wheels' exported CMake include paths (they name the wheels' build container);
  4. build and install the interface package ``ocean_ros_msgs`` (``msg/``) into the venv prefix;
  5. only where no ``vision_msgs`` is importable, build a wire-compatible one (``scripts/vision_msgs_compat``);
  6. install ``ocean_ros`` itself in editable mode;
  7. lay it out as an ament prefix in the venv (share files, ``lib/ocean_ros/`` executables, index marker), so that
     ``ros2 launch`` / ``ros2 run`` work from it after ``source scripts/env.sh`` (done on every run: cheap);
  8. where the project's shared folder holds ``wheels/ros2-launch/`` (ROS 2 launch, launch_ros and ros2cli, which
     PyPI does not have), install those wheels and build their ``src/composition_interfaces``, so that the venv
     has ``ros2 launch``; without that folder, skipped with a note.

Usage: ``python3 scripts/setup_env.py [--venv PATH] [--launch-wheels DIR] [--force]``. Uses only the standard
library.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAMP_NAME = ".ocean_ros_setup.json"
MIN_PYTHON = (3, 10)
# What the launch wheels need from PyPI (their README); pinned like requirements.txt, installed only with them.
LAUNCH_PYPI = ("psutil==7.2.2", "osrf-pycommon==2.0.2", "argcomplete==3.7.2")
LAUNCH_CHECK = "import launch, launch_ros, ros2launch, ros2cli, composition_interfaces.srv"


class SetupError(RuntimeError):
    """A precondition is missing; the message says what to install."""


def log(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def tree_digest(*paths: Path, base: Path = REPO) -> str:
    """Digest of file names (relative to ``base``) and contents under the given files or folders (build outputs
    excluded)."""
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(base)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def data_root() -> Path:
    """The project's data folder as ``ocean_ros.eval.validation_set`` defines it ($OCEAN_ROS_DATA, else
    ../shared/data beside the repository root).

    Loaded from its file: this runs before the venv exists, and that module needs only the standard library.
    """
    spec = importlib.util.spec_from_file_location(
        "_ocean_validation_set", REPO / "ocean_ros" / "eval" / "validation_set.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.data_root())


def launch_wheels_dir() -> Path:
    """Where the ROS 2 launch wheels are looked for: ``wheels/ros2-launch`` in the shared folder that holds the
    data folder."""
    return data_root().parent / "wheels" / "ros2-launch"


def check_tools() -> None:
    """Fail early, naming what is missing, before anything slow happens."""
    if sys.version_info < MIN_PYTHON:
        raise SetupError(f"Python >= {'.'.join(map(str, MIN_PYTHON))} is required, this is {sys.version.split()[0]}")
    missing = []
    for tool in ("cmake", "cc", "c++"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        raise SetupError(
            f"missing build tools: {', '.join(missing)} (needed to build the ROS interface packages); "
            "on Debian/Ubuntu: sudo apt-get install cmake build-essential"
        )
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise SetupError(
            f"Python headers not found ({header}); on Debian/Ubuntu: sudo apt-get install python{version}-dev"
        )


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def run(cmd: list[str | Path], **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def probe(python: Path, code: str, env: dict[str, str] | None = None) -> bool:
    """True when ``code`` runs without error in the venv's interpreter."""
    result = subprocess.run(
        [str(python), "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return result.returncode == 0


def ensure_venv(venv: Path) -> Path:
    python = venv_python(venv)
    if not python.exists():
        log(f"creating {venv}")
        run([sys.executable, "-m", "venv", venv])
    return python


def install_requirements(python: Path) -> None:
    log("installing requirements.txt (first run: a few minutes)")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", REPO / "requirements.txt"])


def repair_wheel_cmake_exports(venv: Path, python: Path) -> int:
    """Rewrite include paths of the wheels' build container to this venv's Python and numpy; idempotent."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig, numpy; print(sysconfig.get_paths()['include']); "
         "print(numpy.get_include())"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    py_include, np_include = out[0], out[1]
    changed = 0
    for export in (venv / "share").glob("*/cmake/export_*__rosidl_generator_pyExport.cmake"):
        text = export.read_text()
        lines = []
        for line in text.splitlines(keepends=True):
            if "INTERFACE_INCLUDE_DIRECTORIES" in line and "/opt/python/" in line:
                line = f'  INTERFACE_INCLUDE_DIRECTORIES "{py_include};{np_include}"\n'
            lines.append(line)
        new = "".join(lines)
        if new != text:
            export.write_text(new)
            changed += 1
    return changed


def build_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(venv)
    env["CMAKE_PREFIX_PATH"] = str(venv)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return env


def build_interface_package(source: Path, venv: Path, python: Path) -> None:
    """Configure, build and install an ament_cmake interface package into the venv prefix."""
    log(f"building interfaces in {source.relative_to(REPO) if source.is_relative_to(REPO) else source}")
    with tempfile.TemporaryDirectory(prefix="ocean_ros_build_") as build:
        env = build_env(venv)
        run(
            [
                "cmake", "-S", source, "-B", build,
                f"-DCMAKE_PREFIX_PATH={venv}", f"-DCMAKE_INSTALL_PREFIX={venv}",
                f"-DPython3_EXECUTABLE={python}", "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release",
            ],
            env=env, stdout=subprocess.DEVNULL,
        )
        run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2)], env=env, stdout=subprocess.DEVNULL)
        run(["cmake", "--install", build], env=env, stdout=subprocess.DEVNULL)


def install_launch_tools(wheels: Path, venv: Path, python: Path) -> None:
    """Install ``ros2 launch`` from a wheels folder: its wheels (no dependency resolution: they name ROS packages
    that the runtime wheels provide under other names), their PyPI dependencies, and the interface package
    ``src/composition_interfaces`` that launch_ros imports."""
    found = sorted(wheels.glob("*.whl"))
    source = wheels / "src" / "composition_interfaces"
    if not found or not (source / "package.xml").is_file():
        raise SetupError(f"{wheels} should hold *.whl and src/composition_interfaces/ (see its README.md)")
    log(f"installing ros2 launch from {wheels} ({len(found)} wheels)")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*pip, *LAUNCH_PYPI])
    run([*pip, "--no-deps", "--force-reinstall", *found])
    build_interface_package(source, venv, python)


def install_self(python: Path) -> None:
    log("installing ocean_ros (editable)")
    run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
         "--no-build-isolation", "-e", REPO],
    )


PACKAGE = "ocean_ros"
# Runs the repository's setup.py with setup() replaced, to learn what a colcon install would lay out.
_LAYOUT_PROBE = """
import json, runpy, setuptools
captured = {}
setuptools.setup = lambda **kwargs: captured.update(kwargs)
runpy.run_path("setup.py", run_name="__main__")
scripts = [entry.split("=")[0].strip() for entry in captured.get("entry_points", {}).get("console_scripts", [])]
print(json.dumps({"data_files": captured.get("data_files", []), "scripts": scripts}))
"""


def package_layout(python: Path) -> tuple[dict[str, Path], list[str]]:
    """What ``setup.py`` installs: {path under the prefix: repository file} and the console script names."""
    out = subprocess.run(
        [str(python), "-c", _LAYOUT_PROBE], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    layout = json.loads(out.strip().splitlines()[-1])
    files = {
        f"{target}/{Path(source).name}": REPO / source
        for target, sources in layout["data_files"] for source in sources
    }
    return files, layout["scripts"]


def _place_link(link: Path, target: Path, root: Path) -> bool:
    """Make ``link`` a symlink to ``target`` (replacing what is there); True if it changed.

    ``root``: the folder every link must stay in (a parent that is a link out of it would write elsewhere).
    """
    if link.is_symlink() and os.readlink(link) == str(target):
        return False
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.parent.resolve().is_relative_to(root.resolve()):
        raise SetupError(f"{link.parent} leads out of {root}; remove it and run again")
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target)
    return True


def _unlink_folder_links(folder: Path) -> int:
    """Remove links to folders at or under ``folder`` (earlier set-ups linked whole folders); returns the count."""
    if folder.is_symlink():
        folder.unlink()
        return 1
    removed = 0
    for current, dirs, _files in os.walk(folder):
        for name in dirs:
            path = Path(current) / name
            if path.is_symlink():
                path.unlink()
                removed += 1
    return removed


def _prune(folder: Path, keep: set[Path]) -> int:
    """Remove the files and links under ``folder`` that are not in ``keep``, then its empty folders."""
    removed = 0
    for current, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(current) / name
            if path not in keep:
                path.unlink()
                removed += 1
        for name in dirs:
            path = Path(current) / name
            if not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
    return removed


def install_ament_prefix(venv: Path, python: Path) -> str:
    """Lay ``ocean_ros`` out in the venv as an ament prefix, as colcon's symlink install would.

    The editable install skips ``data_files`` and puts executables in ``bin/``. ROS tools need more:
    ``ros2 launch`` walks ``share/<package>`` without following folder links, so each installed file gets
    its own link (to the working tree: edits show at once; new or removed files follow on the next run);
    launch_ros and ``ros2 run`` look for executables in ``lib/<package>/``; the ament index needs the
    package marker. Returns a one-line summary.
    """
    files, scripts = package_layout(python)
    share = venv / "share" / PACKAGE
    libexec = venv / "lib" / PACKAGE
    removed = _unlink_folder_links(share) + _unlink_folder_links(libexec)
    changed = 0
    for relative, source in files.items():
        changed += _place_link(venv / relative, source, venv)
    missing = [name for name in scripts if not (venv / "bin" / name).exists()]
    if missing:
        raise SetupError(f"console scripts missing from {venv / 'bin'}: {', '.join(missing)}")
    for name in scripts:
        changed += _place_link(libexec / name, venv / "bin" / name, venv)
    removed += _prune(share, {venv / relative for relative in files})
    removed += _prune(libexec, {libexec / name for name in scripts})
    return (f"ament prefix: {len(files)} share files, {len(scripts)} executables in {libexec.relative_to(venv)}/"
            f" ({changed} updated, {removed} stale removed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="virtual environment folder")
    parser.add_argument("--launch-wheels", type=Path, default=launch_wheels_dir(),
                        help="folder of the ROS 2 launch wheels (default: %(default)s); skipped when absent")
    parser.add_argument("--force", action="store_true", help="redo every step")
    args = parser.parse_args(argv)
    venv = args.venv.resolve()

    try:
        check_tools()
    except SetupError as err:
        print(f"[setup] ERROR: {err}", file=sys.stderr)
        return 2

    python = ensure_venv(venv)
    stamp_path = venv / STAMP_NAME
    stamp = {} if args.force or not stamp_path.exists() else json.loads(stamp_path.read_text())
    wanted = {
        "requirements": tree_digest(REPO / "requirements.txt"),
        "ocean_ros_msgs": tree_digest(REPO / "msg"),
        "vision_msgs": tree_digest(REPO / "scripts" / "vision_msgs_compat"),
        "ocean_ros": tree_digest(REPO / "setup.py", REPO / "setup.cfg", REPO / "package.xml"),
    }

    def save() -> None:
        stamp_path.write_text(json.dumps(stamp, indent=1))

    if stamp.get("requirements") != wanted["requirements"]:
        install_requirements(python)
        stamp["requirements"] = wanted["requirements"]
        for built in ("ocean_ros_msgs", "ros2_launch"):  # new wheels may replace the prefix these were built against
            stamp.pop(built, None)
        save()
    repaired = repair_wheel_cmake_exports(venv, python)
    if repaired:
        log(f"repaired {repaired} exported CMake files of the ROS wheels")

    env = build_env(venv)
    if stamp.get("ocean_ros_msgs") != wanted["ocean_ros_msgs"] or not probe(
        python, "import ocean_ros_msgs.msg", env
    ):
        build_interface_package(REPO / "msg", venv, python)
        stamp["ocean_ros_msgs"] = wanted["ocean_ros_msgs"]
        save()

    own_vision = stamp.get("vision_msgs_built", False)
    if not probe(python, "import vision_msgs.msg", env) or (
        own_vision and stamp.get("vision_msgs") != wanted["vision_msgs"]
    ):
        build_interface_package(REPO / "scripts" / "vision_msgs_compat", venv, python)
        stamp["vision_msgs"] = wanted["vision_msgs"]
        stamp["vision_msgs_built"] = True
        save()

    check = "import rclpy, torch, cv2, ocean_ros, ocean_ros_msgs.msg, vision_msgs.msg"
    wheels = args.launch_wheels.resolve()
    if wheels.is_dir():
        digest = tree_digest(wheels, base=wheels)
        if stamp.get("ros2_launch") != digest or not (venv / "bin" / "ros2").exists() or not probe(
            python, LAUNCH_CHECK, env
        ):
            try:
                install_launch_tools(wheels, venv, python)
            except SetupError as err:
                print(f"[setup] ERROR: {err}", file=sys.stderr)
                return 1
            stamp["ros2_launch"] = digest
            save()
        check = f"{check}; {LAUNCH_CHECK}"
    else:
        log(f"no launch wheels at {wheels}: `ros2 launch` not installed (README: `ros2 launch` without a ROS install)")

    if stamp.get("ocean_ros") != wanted["ocean_ros"] or not probe(python, "import ocean_ros", env):
        install_self(python)
        stamp["ocean_ros"] = wanted["ocean_ros"]
        save()
    try:
        log(install_ament_prefix(venv, python))
    except SetupError as err:
        print(f"[setup] ERROR: {err}", file=sys.stderr)
        return 1

    if not probe(python, check, env):
        subprocess.run([str(python), "-c", check], env=env)
        print("[setup] ERROR: the environment does not import; see the traceback above", file=sys.stderr)
        return 1
    log(f"ready: {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
