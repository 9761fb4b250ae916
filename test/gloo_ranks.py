"""Ranks of a training worker script as local processes, joined in a gloo process group on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gloo_ranks(argv: Sequence[str], cwd: Path, pythonpath: Sequence[Path], world: int = 2) -> Iterator[list]:
    """Start ``world`` copies of ``argv`` as ranks 0..world-1 (stdout and stderr merged, text); yields the
    processes and kills any still running on exit. ``pythonpath`` goes in front of the inherited PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(world):
            rank_env = {**env, "WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo"}
            procs.append(subprocess.Popen(list(argv), env=rank_env, cwd=cwd, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
