"""Per-stage wall times of a frame (host clocks on a CPU, CUDA events on a GPU)."""

from __future__ import annotations

import time

import torch

__all__ = ["StageTimer"]



class StageTimer:
    """Per-stage wall times in ms (a stage marked twice adds up); on CUDA it reads events once the result copy
    has synchronised."""

    def __init__(self, device: torch.device) -> None:
        self._stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._marks: list[tuple[str, object]] = []
        self._t0 = time.perf_counter()
        self._marks.append(("start", self._now()))

    def _now(self) -> object:
        if self._stream is not None:
            event = torch.cuda.Event(enable_timing=True)
            event.record(self._stream)
            return event
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        """End ``stage`` now (it began at the previous mark)."""
        self._marks.append((stage, self._now()))

    def finish(self) -> dict[str, float]:
        """Milliseconds per stage, plus ``total`` (host wall time since the timer started)."""
        timings: dict[str, float] = {}
        for (_, before), (stage, after) in zip(self._marks, self._marks[1:], strict=False):
            if self._stream is not None:
                after.synchronize()  # type: ignore[attr-defined]
                elapsed = before.elapsed_time(after)  # type: ignore[attr-defined]
            else:
                elapsed = (after - before) * 1000.0  # type: ignore[operator]
            timings[stage] = timings.get(stage, 0.0) + elapsed
        timings["total"] = (time.perf_counter() - self._t0) * 1000.0
        return timings
