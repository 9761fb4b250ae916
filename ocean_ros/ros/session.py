"""A ROS participant inside a tool or test: its own rclpy context and node, spun by a background thread."""

from __future__ import annotations

import threading
import time
from typing import Any


class RosSession:
    """A private rclpy context with one node, spun by a daemon executor thread until :meth:`close`.

    The DDS environment must be set before the first session (see :mod:`ocean_ros.ros.dds`).
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
