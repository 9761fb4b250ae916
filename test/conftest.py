"""Shared pytest fixtures: reference data location and the ROS loopback-only environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocean_ros.eval.validation_set import DATA_ENV, REPO_ROOT, data_root

REQUIRE_DATA_ENV = "OCEAN_ROS_REQUIRE_DATA"

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Before any test initialises rclpy: every ROS participant of this run stays on loopback, in one random domain.
from ocean_ros.rostools.dds import apply_loopback_environment  # noqa: E402

LOOPBACK_ENV = apply_loopback_environment()


def modules_loaded_by_importing(names: list[str]) -> list[str]:
    """Every module in sys.modules after a fresh interpreter imports ``names`` (nothing else preloaded)."""
    import json
    import subprocess

    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def need_path(path: Path, reason: str) -> Path:
    """Return ``path``, or skip for ``reason`` (fail under OCEAN_ROS_REQUIRE_DATA=1) if it is absent.

    For everything the project's shared folder provides: a clone where it is present must not skip silently.
    """
    if not path.exists():
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def need_data(*relative: str) -> Path:
    """Return the path under the data root, or skip (fail under OCEAN_ROS_REQUIRE_DATA=1) if absent."""
    path = data_root().joinpath(*relative)
    return need_path(path, (
        f"reference data {path} not found: set {DATA_ENV} to the folder holding golden/ and "
        "sequences/ (the project's shared data, see README 'Reference data')"
    ))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return need_data("golden")


@pytest.fixture(scope="session")
def sequences_dir() -> Path:
    return need_data("sequences")


@pytest.fixture(scope="session")
def online_checkpoint(golden_dir, tmp_path_factory) -> Path:
    """The reference online checkpoint, merged as golden/README.md says: the seed-1 tensors except align_head.*,
    plus the online extras (layeronline and classifier)."""
    import torch

    base = torch.load(golden_dir / "ocean_random_seed1.pth", weights_only=True)
    extra = torch.load(golden_dir / "ocean_online_extra_seed2.pth", weights_only=True)
    merged = {k: v for k, v in base.items() if not k.startswith("align_head.")}
    assert len(merged) == 400 and len(extra) == 122
    merged.update(extra)
    path = tmp_path_factory.mktemp("online") / "ocean_online_merged.pth"
    torch.save(merged, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Callable[..., Path]:
    """Factory of tiny Ocean-Lite checkpoints (random weights, 16-channel head, preset LITE stored), one file per
    ``online_dim`` (0: no online classifier): the real network and checkpoint format, at test cost."""
    import torch

    from ocean_ros.core.checkpoint import save_checkpoint
    from ocean_ros.core.model import LiteNetConfig, OceanLiteNet

    folder = tmp_path_factory.mktemp("tiny")

    def make(online_dim: int = 16) -> Path:
        path = folder / f"tiny_lite_{online_dim}.pth"
        if not path.exists():
            torch.manual_seed(0)
            net = OceanLiteNet(LiteNetConfig(channels=16, tower_depth=1, align=False, online_dim=online_dim))
            save_checkpoint(path, net, {"preset": "LITE"})
        return path

    return make


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The random ROS domain id of this test run (loopback only)."""
    return int(LOOPBACK_ENV["ROS_DOMAIN_ID"])


@pytest.fixture
def ros_session() -> Iterator[Callable[..., object]]:
    """Factory of in-process rclpy sessions (own context, node, spinning executor); closed after the test."""
    from ros_helpers import RosSession

    sessions: list[RosSession] = []

    def make(name: str = "ocean_test", domain_id: int | None = None) -> RosSession:
        session = RosSession(name, domain_id)
        sessions.append(session)
        return session

    yield make
    for session in reversed(sessions):
        session.close()


@pytest.fixture
def node_process(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Factory that starts ROS processes (console scripts) in the loopback environment; stopped after the test."""
    from ros_helpers import start_node_process

    processes: list = []

    def start(argv: list[str], domain_id: int | None = None, extra_env: dict[str, str] | None = None):
        log = tmp_path / f"process_{len(processes)}.log"
        process = start_node_process(argv, log, domain_id=domain_id, extra_env=extra_env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()
