"""Shared pytest fixtures: reference data location and the ROS loopback-only environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "OCEAN_ROS_DATA"
REQUIRE_DATA_ENV = "OCEAN_ROS_REQUIRE_DATA"


def data_root() -> Path:
    """The shared data folder: $OCEAN_ROS_DATA, else ../shared/data beside the repository root."""
    return Path(os.environ.get(DATA_ENV, REPO_ROOT.parent / "shared" / "data"))


def need_data(*relative: str) -> Path:
    """Return the path under the data root, or skip (fail under OCEAN_ROS_REQUIRE_DATA=1) if absent."""
    path = data_root().joinpath(*relative)
    if not path.exists():
        reason = (
            f"reference data {path} not found: set {DATA_ENV} to the folder holding golden/ and "
            "sequences/ (the project's shared data, see README 'Reference data')"
        )
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return need_data("golden")


@pytest.fixture(scope="session")
def sequences_dir() -> Path:
    return need_data("sequences")
