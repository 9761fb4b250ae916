"""Loopback-only DDS settings for every ROS process that tests, benchmarks and demos start.

Fast DDS's defaults send discovery traffic out of the machine's real interfaces. The environment built here
keeps all traffic on the host: discovery range LOCALHOST (Jazzy and later; ``ROS_LOCALHOST_ONLY`` for Humble),
a Fast DDS profile that disables the builtin transports and allows only shared memory and UDP on 127.0.0.1, and
a random domain id so that parallel runs never see each other. Imports only the standard library.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path

PROFILE_NAME = "fastdds_loopback.xml"


def loopback_profile_path() -> Path:
    """Path of the shipped Fast DDS loopback profile (working tree first, then installed share folders)."""
    candidates = [Path(__file__).resolve().parent.parent.parent / "config" / PROFILE_NAME]
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    candidates += [Path(p) / "share" / "ocean_ros" / "config" / PROFILE_NAME for p in prefixes if p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{PROFILE_NAME} not found; looked in: {', '.join(map(str, candidates))}")


def random_domain_id(rng: random.Random | None = None) -> int:
    """A ROS domain id in 1..100, drawn so that concurrent test runs are unlikely to share one."""
    return (rng or random.SystemRandom()).randint(1, 100)


def loopback_environment(
    domain_id: int | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for a ROS process confined to loopback.

    ``base`` defaults to ``os.environ``. The domain id is kept from ``base`` when set there and ``domain_id``
    is None, otherwise drawn at random.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        domain_id = int(env["ROS_DOMAIN_ID"]) if env.get("ROS_DOMAIN_ID") else random_domain_id()
    env.update(
        {
            "ROS_DOMAIN_ID": str(domain_id),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_LOCALHOST_ONLY": "1",
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "FASTDDS_DEFAULT_PROFILES_FILE": str(loopback_profile_path()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Jazzy and later warn when both discovery variables are set; Humble knows only ROS_LOCALHOST_ONLY.
    if os.environ.get("ROS_DISTRO", "") not in ("", "humble"):
        env.pop("ROS_LOCALHOST_ONLY")
    return env


def apply_loopback_environment(domain_id: int | None = None) -> dict[str, str]:
    """Apply :func:`loopback_environment` to this process (call before ``rclpy.init``); returns it."""
    env = loopback_environment(domain_id)
    os.environ.update(env)
    return env
