"""Helpers for tests that use real ROS 2: in-process executors, message collection, node processes.

Every process and context created here uses the loopback-only DDS environment (``ocean_ros.rostools.dds``), which
``conftest.py`` applies to the test process before anything initialises rclpy.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocean_ros.rostools.dds import loopback_environment
from ocean_ros.rostools.session import NodeProcess
from ocean_ros.rostools.session import RosSession as BaseSession


class RosSession(BaseSession):
    """:class:`ocean_ros.rostools.session.RosSession` with message collectors for assertions."""

    def __init__(self, name: str = "ocean_test", domain_id: int | None = None) -> None:
        super().__init__(name, domain_id)

    def collector(self, msg_type: type, topic: str, qos: Any = 10) -> MessageCollector:
        """Subscribe to ``topic`` and keep every message with its receive time."""
        return MessageCollector(self.node, msg_type, topic, qos)


@dataclass
class MessageCollector:
    """Collects messages of one subscription; ``wait_for`` blocks with a timeout."""

    node: Any
    msg_type: type
    topic: str
    qos: Any = 10
    messages: list[Any] = field(default_factory=list)
    receive_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.subscription = self.node.create_subscription(self.msg_type, self.topic, self._on_message, self.qos)

    def _on_message(self, msg: Any) -> None:
        with self._cond:
            self.messages.append(msg)
            self.receive_times.append(time.monotonic())
            self._cond.notify_all()

    def wait_for(
        self, count: int, timeout: float, predicate: Callable[[list[Any]], bool] | None = None
    ) -> list[Any]:
        """Wait until ``count`` messages arrived (and ``predicate`` holds); return a copy of them.

        Returns what arrived when the timeout expires; callers assert on the result.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count or (predicate is not None and not predicate(self.messages)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.messages)

    def wait_quiet(self, quiet_s: float, timeout: float) -> list[Any]:
        """Wait until no message arrived for ``quiet_s`` seconds (or the timeout); return the messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self.receive_times[-1] if self.receive_times else None
            if last is not None and time.monotonic() - last > quiet_s:
                break
            time.sleep(0.02)
        with self._cond:
            return list(self.messages)


def wait_for_publishers(node: Any, topic: str, count: int = 1, timeout: float = 20.0) -> bool:
    """True once ``count`` publishers on ``topic`` are visible to ``node``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.count_publishers(topic) >= count:
            return True
        time.sleep(0.02)
    return False


def console_script(name: str) -> str:
    """Path of an installed console script of this environment (the venv's bin folder first)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name!r} not installed; run scripts/setup_env.py")
    return found


def start_node_process(
    argv: Sequence[str], log_path: Path, domain_id: int | None = None, extra_env: dict[str, str] | None = None
) -> NodeProcess:
    """A ROS process started with the loopback environment (plus ``extra_env``); output captured to ``log_path``."""
    env = loopback_environment(domain_id)
    env.update(extra_env or {})
    return NodeProcess(argv, env, log_path)
