"""ROS participants of tools and tests: an in-process context spun by a thread, and node processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class RosSession:
    """A private rclpy context with one node, spun by a daemon executor thread until :meth:`close`.

    The DDS environment must be set before the first session (see :mod:`ocean_ros.rostools.dds`).
    """

    def __init__(self, name: str, domain_id: int | None = None) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        init_kwargs: dict[str, Any] = {"context": self.context}
        if domain_id is not None:
            init_kwargs["domain_id"] = domain_id
        rclpy.init(**init_kwargs)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()


def call_service(client: Any, request: Any, timeout: float) -> Any:
    """Call a service from any thread while a session spins the node; the response, or None after ``timeout`` s."""
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    return future.result() if future.done() else None


class NodeProcess:
    """A ROS process in its own process group, output in a log file; stopped with SIGINT, then SIGKILL."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """Everything the process printed so far (also after :meth:`stop`)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT to the process group, SIGKILL after ``timeout`` s; returns the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode
