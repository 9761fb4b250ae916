#!/usr/bin/env python3
"""Soak: the real tracker node for N minutes under a 640x480 30 Hz camera, with the faults a robot sees.

During the run: reset + init every 5 s, 1 % malformed frames, one camera publisher restart, one lifecycle
deactivate/activate, one backward jump of the camera's stamps. Every minute: the node's RSS, latency (image
published -> detections received) p50/p99, frames processed/dropped/rejected and states. At the end: a table,
PASS/FAIL per criterion (exit code 1 on any FAIL), a PNG plot of RSS and latency over time and a JSON beside it.

    python benchmarks/soak.py --minutes 10                           # the node's default model, default device
    python benchmarks/soak.py --minutes 1 --allow-random-weights --out /tmp/soak.png   # a plumbing check

All ROS traffic stays on loopback (``ocean_ros.rostools.dds``). The scene is synthetic: a textured square moving on a
Lissajous path over a textured background, so the true box of every frame is known.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocean_ros.eval.validation_set import REPO_ROOT


def portable(value: object) -> object:
    """Paths inside the repository as repository-relative text, so the committed report names no machine."""
    if isinstance(value, (str, Path)) and str(value).startswith(str(REPO_ROOT) + "/"):
        return str(Path(value).relative_to(REPO_ROOT))
    return str(value) if isinstance(value, Path) else value
NAMESPACE = "/soak"
BASE = f"{NAMESPACE}/ocean_tracker"
STATE_NAMES = {0: "IDLE", 1: "TRACKING", 2: "LOST"}
EXPECTED_REASONS = {"bad_image", "out_of_order"}  # what the injected faults must be counted under


# --- the scene and the camera --------------------------------------------------------------------------------


class Scene:
    """A ``width`` x ``height`` BGR scene with one textured square target whose box is known at every time."""

    def __init__(self, width: int, height: int, seed: int, target: int = 64) -> None:
        import cv2

        rng = np.random.default_rng(seed)
        coarse = rng.integers(40, 200, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        self.background = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        blocks = rng.integers(0, 256, (target // 8, target // 8, 3), dtype=np.uint8)
        self.patch = np.kron(blocks, np.ones((8, 8, 1), np.uint8))
        self.patch[:4], self.patch[-4:], self.patch[:, :4], self.patch[:, -4:] = 255, 255, 255, 255
        self.width, self.height, self.size = width, height, target

    def box(self, t: float) -> tuple[float, float, float, float]:
        """Target box x, y, w, h (pixels) at scene time ``t`` (s)."""
        cx = self.width / 2 + 0.3 * self.width * math.sin(2 * math.pi * t / 20.0)
        cy = self.height / 2 + 0.25 * self.height * math.sin(2 * math.pi * t / 13.0)
        return (float(round(cx - self.size / 2)), float(round(cy - self.size / 2)), float(self.size),
                float(self.size))

    def frame(self, t: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        box = self.box(t)
        x, y = int(box[0]), int(box[1])
        frame = self.background.copy()
        frame[y:y + self.size, x:x + self.size] = self.patch
        return frame, box


def malformed_image(kind: int, width: int, height: int) -> Any:
    """One of four frames the node must refuse as ``bad_image``."""
    from sensor_msgs.msg import Image

    if kind == 0:
        return Image(width=width, height=height, encoding="yuv422", step=2 * width, data=bytes(2 * width * height))
    if kind == 1:  # truncated buffer
        return Image(width=width, height=height, encoding="bgr8", step=3 * width, data=bytes(1000))
    if kind == 2:  # step shorter than a row
        return Image(width=width, height=height, encoding="bgr8", step=width, data=bytes(width * height))
    return Image(width=0, height=height, encoding="bgr8", step=0, data=b"")


@dataclass
class Sent:
    """A well-formed frame as published: its publish (and scene) time in s since the start, and its true box."""

    t: float
    box: tuple[float, float, float, float]


class Camera:
    """Publishes the scene at ``rate`` Hz from its own ROS participant, as a camera driver would.

    Stamps are the wall clock plus an offset (``jump_back`` steps it back, as an NTP correction would);
    ``restart`` tears the participant down and starts a new one; ``malformed_fraction`` of the frames are broken
    while ``inject`` is true.
    """

    def __init__(self, scene: Scene, rate: float, malformed_fraction: float, t0: float, seed: int) -> None:
        self.scene, self.period, self.fraction, self.t0 = scene, 1.0 / rate, malformed_fraction, t0
        self.rng = np.random.default_rng(seed)
        self.inject = False  # switched on once the node answers frames (see quiet())
        self._paused = False
        self.sent: dict[int, Sent] = {}
        self.malformed: list[float] = []  # publish times of the malformed frames that the node had to see
        self.published = 0
        self.offset_ns = 0
        self.lock = threading.Lock()
        self._running = True
        self._session: Any = None
        self._publisher: Any = None
        self._open()
        self._thread = threading.Thread(target=self._run, name="soak_camera", daemon=True)

    def _open(self) -> None:
        from ocean_ros.rostools.camera import CameraPublisher
        from ocean_ros.rostools.session import RosSession

        self._session = RosSession("soak_camera")
        self._publisher = CameraPublisher(self._session.node, f"{NAMESPACE}/image")

    def wait_matched(self, timeout: float) -> bool:
        return self._publisher.wait_subscribers(1, timeout)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._session.close()

    def restart(self, gap_s: float) -> None:
        """Close the camera's participant, stay silent ``gap_s`` seconds, come back with a new one."""
        with self.lock:
            self._paused = True
        self._session.close()
        time.sleep(gap_s)
        self._open()
        self.wait_matched(30.0)
        with self.lock:
            self._paused = False

    def jump_back(self, seconds: float) -> None:
        with self.lock:
            self.offset_ns -= int(seconds * 1e9)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _run(self) -> None:
        next_time = time.monotonic()
        kinds = 0
        while self._running:
            time.sleep(max(0.0, next_time - time.monotonic()))
            next_time = max(next_time + self.period, time.monotonic() - self.period)
            with self.lock:
                if self._paused:
                    continue
                t = self.now()
                stamp = time.time_ns() + self.offset_ns
                if self.inject and self.rng.random() < self.fraction:
                    self._publisher.publish(None, stamp, raw=malformed_image(kinds % 4, self.scene.width,
                                                                             self.scene.height))
                    kinds += 1
                    self.malformed.append(t)
                else:
                    frame, box = self.scene.frame(t)
                    self._publisher.publish(frame, stamp)
                    self.sent[stamp] = Sent(t, box)
                self.published += 1
                if self.published % 300 == 0:  # keep the last 20 s
                    self.sent = {s: v for s, v in self.sent.items() if t - v.t < 20.0}

    def lookup(self, stamp: int) -> Sent | None:
        with self.lock:
            return self.sent.get(stamp)


# --- the observer: outputs of the node, service calls ------------------------------------------------------


@dataclass
class Detection:
    received: float  # s since start
    published: float  # publish time of its frame (s since start)
    boxes: int


class Observer:
    """The soak's own ROS participant: collects detections, status and diagnostics, calls the node's services."""

    def __init__(self, camera: Camera, t0: float) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState
        from ocean_ros_msgs.msg import TrackerStatus
        from ocean_ros_msgs.srv import InitTarget
        from rclpy.qos import QoSProfile
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray

        from ocean_ros.rostools.session import RosSession

        self.camera, self.t0 = camera, t0
        self.session = RosSession("soak_observer")
        node = self.session.node
        self.lock = threading.Lock()
        self.detections: list[Detection] = []
        self.statuses: list[tuple[float, int, int, int, int, int]] = []  # t, stamp, state, processed, dropped, rej
        self.diagnostics: list[tuple[float, dict[str, str]]] = []
        reliable = QoSProfile(depth=100)
        node.create_subscription(Detection2DArray, f"{BASE}/detections", self._on_detections, reliable)
        node.create_subscription(TrackerStatus, f"{BASE}/status", self._on_status, reliable)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.init_client = node.create_client(InitTarget, f"{BASE}/init_target")
        self.reset_client = node.create_client(Trigger, f"{BASE}/reset")
        self.change_client = node.create_client(ChangeState, f"{BASE}/change_state")

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _on_detections(self, msg: Any) -> None:
        from ocean_ros.ros.messages import stamp_to_ns

        sent = self.camera.lookup(stamp_to_ns(msg.header.stamp))
        if sent is not None:
            with self.lock:
                self.detections.append(Detection(self.now(), sent.t, len(msg.detections)))

    def _on_status(self, msg: Any) -> None:
        from ocean_ros.ros.messages import stamp_to_ns

        with self.lock:
            self.statuses.append((self.now(), stamp_to_ns(msg.header.stamp), int(msg.state),
                                  int(msg.frames_processed), int(msg.frames_dropped), int(msg.frames_rejected)))

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith(BASE):
                with self.lock:
                    self.diagnostics.append((self.now(), {kv.key: kv.value for kv in status.values}))

    def recent_processed_frame(self, max_age: float) -> tuple[int, Sent] | None:
        """The newest frame the node processed (its status came) published at most ``max_age`` s ago."""
        with self.lock:
            stamps = [s[1] for s in self.statuses[-5:]]
        for stamp in reversed(stamps):
            sent = self.camera.lookup(stamp)
            if sent is not None and self.camera.now() - sent.t <= max_age:
                return stamp, sent
        return None

    def latest_diagnostics(self) -> dict[str, str]:
        with self.lock:
            return dict(self.diagnostics[-1][1]) if self.diagnostics else {}

    def resumed_after(self, t: float, need_box: bool) -> float | None:
        """Seconds from ``t`` to the first detections for a frame published after ``t`` (None: not yet)."""
        first = None
        with self.lock:
            for det in reversed(self.detections):  # only those received after t can qualify
                if det.received < t:
                    break
                if det.published >= t and (det.boxes > 0 or not need_box):
                    first = det.received - t
        return first

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        from ocean_ros.rostools.session import call_service

        return call_service(client, request, timeout)

    def close(self) -> None:
        self.session.close()


# --- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Event:
    kind: str
    start: float
    end: float
    ok: bool = True
    detail: str = ""
    resumed_s: float | None = None


@dataclass
class Run:
    minutes: float
    events: list[Event] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # t, MiB
    crashed_at: float | None = None
    exit_code: int | None = None


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def init_cycle(observer: Observer, camera: Camera, stamped: bool) -> Event:
    """Reset, then initialise: ``stamped`` on a recent frame the node holds (with that frame's true box; the node
    then catches up over the newer frames, as after a detector's hand-off), else on its latest frame (an operator's
    click: zero stamp, the present box)."""
    from ocean_ros_msgs.srv import InitTarget
    from std_srvs.srv import Trigger

    start = observer.now()
    reply = observer.call(observer.reset_client, Trigger.Request())
    if reply is None or not reply.success:
        return Event("init", start, observer.now(), False, f"reset failed: {reply.message if reply else 'no answer'}")
    request = InitTarget.Request()
    frame = observer.recent_processed_frame(max_age=0.8) if stamped else None  # processed: in the node's ring
    if frame is not None:
        stamp, sent = frame
        request.target.header.stamp.sec, request.target.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        box = sent.box
    else:  # zero stamp: the node's latest frame, with the present box
        box = camera.scene.box(camera.now())
    request.target.x, request.target.y, request.target.width, request.target.height = box
    request.target.target_id, request.target.label = "soak", "square"
    reply = observer.call(observer.init_client, request)
    end = observer.now()
    if reply is None or not reply.accepted:
        return Event("init", start, end, False, f"init refused: {reply.reason if reply else 'no answer'}")
    return Event("init", start, end)


def quiet(camera: Camera, on: bool, settle_s: float = 1.0) -> None:
    """Stop (or resume) malformed frames around a fault, so that each one reaches an active, matched node."""
    if on:
        camera.inject = False
        time.sleep(settle_s)
    else:
        time.sleep(settle_s)
        camera.inject = True


def inject_fault(kind: str, args: argparse.Namespace, observer: Observer, camera: Camera) -> Event:
    """Inject one fault; the event ends when the fault is over (tracking may resume from then on)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    if kind == "stamp_jump":  # malformed frames stay on: they are refused before the stamp is looked at
        start = observer.now()
        camera.jump_back(args.stamp_jump)
        return Event(kind, start, observer.now(), True, f"camera stamps stepped back by {args.stamp_jump:g} s")
    quiet(camera, True)
    start = observer.now()
    if kind == "camera_restart":
        camera.restart(args.restart_gap)
        event = Event(kind, start, observer.now(), True, f"camera participant gone for {args.restart_gap:g} s")
    else:
        answers = []
        for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE):
            request = ChangeState.Request(transition=Transition(id=transition))
            reply = observer.call(observer.change_client, request, 30.0)
            answers.append(bool(reply and reply.success))
            if transition == Transition.TRANSITION_DEACTIVATE:
                time.sleep(args.inactive)
        event = Event(kind, start, observer.now(), all(answers),
                      f"inactive for {args.inactive:g} s, transitions answered {answers}")
    quiet(camera, False)
    return event


def run_soak(args: argparse.Namespace, node: Any, observer: Observer, camera: Camera) -> Run:
    """The timeline: init + reset cycles throughout, the three faults at 35, 55 and 75 % of the run."""
    duration = args.minutes * 60.0
    run = Run(args.minutes)
    faults = [(0.35 * duration, "camera_restart"), (0.55 * duration, "lifecycle"), (0.75 * duration, "stamp_jump")]
    need_box = not args.allow_random_weights
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.is_set():
            value = rss_mib(node.proc.pid)
            if value is not None:
                run.rss.append((observer.now(), value))
            stop_sampling.wait(2.0)

    sampler = threading.Thread(target=sample, name="soak_rss", daemon=True)
    sampler.start()
    next_cycle, last_report = 1.0, 0.0
    try:
        while (t := observer.now()) < duration:
            if not node.alive():
                run.crashed_at = t
                break
            if faults and t >= faults[0][0]:
                _, kind = faults.pop(0)
                event = inject_fault(kind, args, observer, camera)
                wait_resumed(observer, event, need_box, args.resume_timeout)
                run.events.append(event)
                print(f"[{observer.now():6.1f} s] {kind}: {event.detail}; tracking resumed after "
                      f"{'-' if event.resumed_s is None else f'{event.resumed_s:.2f} s'}", flush=True)
                next_cycle = observer.now() + 1.0  # inits name frames the node accepted after the fault
            elif t >= next_cycle and init_settled(observer, run.events, args.resume_timeout):
                inits = sum(1 for e in run.events if e.kind == "init")
                run.events.append(init_cycle(observer, camera, stamped=inits % 2 == 0))
                next_cycle = max(next_cycle + args.cycle_period, observer.now() + 0.5)
            if t - last_report >= 60.0:
                last_report = t
                print(f"[{t:6.1f} s] {summary_line(observer.latest_diagnostics())}", flush=True)
            time.sleep(0.05)
        camera.inject = False
        time.sleep(2.5)  # two diagnostics periods: the last malformed frames are counted in what we read
        for event in run.events:
            if event.kind == "init" and event.ok:
                event.resumed_s = observer.resumed_after(event.end, True)
    finally:
        stop_sampling.set()
        sampler.join(timeout=5)
    return run


def init_settled(observer: Observer, events: list[Event], timeout: float) -> bool:
    """True once the last init took effect (a box came for a newer frame) or had its time: inits do not pile up
    behind a slow catch-up."""
    last = next((e for e in reversed(events) if e.kind == "init" and e.ok), None)
    return last is None or observer.now() > last.end + timeout or observer.resumed_after(last.end, True) is not None


def wait_resumed(observer: Observer, event: Event, need_box: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resumed = observer.resumed_after(event.end, need_box)
        if resumed is not None:
            event.resumed_s = resumed
            return
        time.sleep(0.05)


def summary_line(diag: dict[str, str]) -> str:
    keys = ("state", "rate_hz", "latency_p50_ms", "latency_p99_ms", "frames_processed", "frames_dropped",
            "frames_rejected", "step_errors")
    return ", ".join(f"{k}={diag[k]}" for k in keys if k in diag) or "(none yet)"


# --- report: table, criteria, plot, JSON ------------------------------------------------------------------------


def state_shares(statuses: list[tuple], lo: float, hi: float) -> dict[str, float]:
    """Share of the time in [lo, hi) spent in each state (%): a status' state holds until the next status."""
    spent: Counter[str] = Counter()
    for (t, _, state, *_), following in zip(statuses, [*statuses[1:], None], strict=True):
        end = following[0] if following is not None else t
        overlap = min(end, hi) - max(t, lo)
        if overlap > 0:
            spent[STATE_NAMES.get(state, "?")] += overlap
    total = sum(spent.values())
    return {name: round(100.0 * value / total, 1) for name, value in spent.items()} if total else {}


def minute_rows(run: Run, observer: Observer) -> list[dict[str, Any]]:
    rows = []
    for minute in range(1, math.ceil(run.minutes) + 1):
        lo, hi = (minute - 1) * 60.0, minute * 60.0
        lat = [1000.0 * (d.received - d.published) for d in observer.detections if lo <= d.received < hi]
        statuses = [s for s in observer.statuses if lo <= s[0] < hi]
        before = [s for s in observer.statuses if s[0] < lo]
        base = before[-1][3:] if before else (0, 0, 0)
        last = statuses[-1][3:] if statuses else base
        states = state_shares(observer.statuses, lo, hi)
        rss = [value for t, value in run.rss if lo <= t < hi]
        rows.append({
            "minute": minute,
            "rss_mib": rss[-1] if rss else None,
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat else None,
            "processed": last[0] - base[0],
            "dropped": last[1] - base[1],
            "rejected": last[2] - base[2],
            "states": states,
            "events": [e.kind for e in run.events if lo <= e.start < hi and e.kind != "init"],
            "inits": sum(1 for e in run.events if e.kind == "init" and lo <= e.start < hi),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ["| minute | RSS MiB | latency p50 ms | p99 ms | processed | dropped | rejected | state | events |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        state = " ".join(f"{k} {v:g}%" for k, v in sorted(r["states"].items(), key=lambda kv: -kv[1]))
        events = ", ".join([*r["events"], f"{r['inits']} inits"])
        lines.append(f"| {r['minute']} | {num(r['rss_mib'], '.1f')} | {num(r['latency_p50_ms'], '.0f')} | "
                     f"{num(r['latency_p99_ms'], '.0f')} | {r['processed']} | {r['dropped']} | {r['rejected']} | "
                     f"{state} | {events} |")
    return "\n".join(lines)


@dataclass
class Criterion:
    name: str
    passed: bool | None  # None: not applicable to this run's length
    detail: str


def criteria(args: argparse.Namespace, run: Run, rows: list[dict[str, Any]], observer: Observer,
             camera: Camera, final: dict[str, str]) -> list[Criterion]:
    out = []
    after_first = [v for t, v in run.rss if t >= 60.0]
    if len(after_first) >= 2:
        growth = 100.0 * (after_first[-1] - after_first[0]) / after_first[0]
        out.append(Criterion("memory", growth < 5.0, f"RSS {after_first[0]:.1f} MiB after minute 1 -> "
                             f"{after_first[-1]:.1f} MiB at the end ({growth:+.1f} %, limit +5 %)"))
    else:
        out.append(Criterion("memory", None, "needs more than one minute"))
    if len(rows) >= 3 and rows[1]["latency_p99_ms"] and rows[-1]["latency_p99_ms"]:
        second, last = rows[1]["latency_p99_ms"], rows[-1]["latency_p99_ms"]
        drift = 100.0 * (last - second) / second
        out.append(Criterion("latency drift", drift <= 20.0, f"p99 last minute {last:.0f} ms vs minute 2 "
                             f"{second:.0f} ms ({drift:+.1f} %, limit +20 %)"))
    else:
        out.append(Criterion("latency drift", None, "needs three minutes or more"))
    errors = int(final.get("step_errors", "0"))
    alive = run.crashed_at is None
    out.append(Criterion("no crash", alive and errors == 0 and run.exit_code == 0,
                         f"node {'alive to the end' if alive else f'died at {run.crashed_at:.0f} s'}, "
                         f"{errors} failed tracking steps, exit code {run.exit_code}"))
    rejected = {k[len("rejected_"):]: int(v) for k, v in final.items() if k.startswith("rejected_")}
    malformed = len(camera.malformed)
    jump = next((e for e in run.events if e.kind == "stamp_jump"), None)
    inits = [e for e in run.events if e.kind == "init"]
    refused_inits = [e.detail for e in inits if not e.ok]
    unexpected = {k: v for k, v in rejected.items() if k not in EXPECTED_REASONS and v}
    # The camera publishes best effort (sensor-data QoS, depth 1), as real drivers do: a frame the node's reader
    # overwrites before its callback runs never reaches the node, malformed or not. Every malformed frame that
    # arrived must be counted; the ones missing must be within what the transport lost overall.
    received = sum(int(final.get(k, "0")) for k in ("frames_processed", "frames_dropped", "frames_rejected"))
    lost = max(0, camera.published - received)
    bad = rejected.get("bad_image", 0)
    counted = (bad <= malformed and malformed - bad <= lost and (jump is None or rejected.get("out_of_order", 0) > 0)
               and not unexpected and not refused_inits)
    out.append(Criterion("faults counted", counted, (
        f"/diagnostics rejected_bad_image {bad} for {malformed} malformed frames sent ({malformed - bad} not "
        f"received; the best-effort camera stream delivered {received} of {camera.published} frames, "
        f"{100.0 * lost / max(camera.published, 1):.1f} % lost in transport or while the node was inactive), "
        f"rejected_out_of_order {rejected.get('out_of_order', 0)} for the stamp jump"
        f"{'' if jump else ' (no jump in this run)'}"
        + (f" (timeline_resets {final['timeline_resets']})" if "timeline_resets" in final else "")
        + f", other reasons {unexpected or 'none'}, "
        f"{len(inits) - len(refused_inits)}/{len(inits)} inits accepted"
        + (f" (first refusal: {refused_inits[0]})" if refused_inits else ""))))
    need_box = not args.allow_random_weights
    parts, resumed_ok = [], True
    horizon = args.minutes * 60.0 - args.resume_timeout  # later faults may not see tracking resume in the run
    for kind in ("camera_restart", "lifecycle", "stamp_jump", "init"):
        events = [e for e in run.events if e.kind == kind and e.ok and (kind != "init" or e.end < horizon)]
        gaps = [e.resumed_s for e in events]
        if events:
            missing = sum(g is None or g > args.resume_timeout for g in gaps)
            resumed_ok &= missing == 0
            worst = max((g for g in gaps if g is not None), default=float("nan"))
            parts.append(f"{kind} {'max ' if len(events) > 1 else ''}{worst:.1f} s"
                         + (f" ({missing} too late or never)" if missing else ""))
        elif kind != "init":
            parts.append(f"{kind} not reached")
    gaps = [observer.resumed_after(t, False) for t in camera.malformed if t < horizon]
    resumed_ok &= all(g is not None and g <= args.resume_timeout for g in gaps)
    parts.append(f"malformed frames max {max((math.inf if g is None else g for g in gaps), default=0.0):.1f} s")
    what = "a box (TRACKING)" if need_box else "detections (target held; random weights: no box required)"
    out.append(Criterion("tracking resumed", resumed_ok, f"{what} within {args.resume_timeout:g} s after each "
                         f"fault: {', '.join(parts)}"))
    wanted = math.ceil(10 * args.minutes)
    out.append(Criterion("init + reset cycles", len(inits) >= wanted if args.minutes >= 10 else None,
                         f"{len(inits)} (wanted: 10 per minute, {wanted}; judged on runs of 10 minutes or more)"))
    return out


def plot(path: Path, run: Run, observer: Observer, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rss, ax_lat) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    if run.rss:
        t, v = zip(*run.rss, strict=True)
        ax_rss.plot(np.asarray(t) / 60.0, v, color="tab:blue")
    ax_rss.set_ylabel("node RSS (MiB)")
    ax_rss.grid(alpha=0.3)
    det = observer.detections
    if det:
        t = np.asarray([d.received for d in det]) / 60.0
        lat = np.asarray([1000.0 * (d.received - d.published) for d in det])
        ax_lat.scatter(t, lat, s=2, color="tab:gray", alpha=0.4, label="each frame")
        edges = np.arange(0.0, run.minutes * 60.0 + 10.0, 10.0)
        centres, p50, p99 = [], [], []
        for lo in edges[:-1]:  # an empty window is a gap in the lines, not a straight line across it
            window = lat[(t * 60.0 >= lo) & (t * 60.0 < lo + 10.0)]
            centres.append((lo + 5.0) / 60.0)
            p50.append(np.percentile(window, 50) if len(window) else np.nan)
            p99.append(np.percentile(window, 99) if len(window) else np.nan)
        ax_lat.plot(centres, p50, color="tab:green", marker=".", label="p50 (10 s windows)")
        ax_lat.plot(centres, p99, color="tab:red", marker=".", label="p99 (10 s windows)")
        ax_lat.legend(loc="upper right", fontsize=8)
    ax_lat.set_ylabel("latency image -> detections (ms)")
    ax_lat.set_xlabel("minutes")
    ax_lat.grid(alpha=0.3)
    for event in run.events:
        if event.kind != "init":
            for ax in (ax_rss, ax_lat):
                ax.axvline(event.start / 60.0, color="tab:orange", linestyle="--", linewidth=1)
            ax_rss.annotate(event.kind.replace("_", " "), (event.start / 60.0, 1.0), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=8, color="tab:orange")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of the run (default 10)")
    parser.add_argument("--checkpoint", default="", help="Ocean checkpoint (default: none given, the node's default)")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="run the node with random weights (plumbing checks; then no box is required)")
    parser.add_argument("--device", default="", help="node device (default: the node's default)")
    parser.add_argument("--preset", default="", help="tracker preset (default: the node's default)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frame rate, Hz")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--malformed", type=float, default=0.01, help="fraction of malformed frames")
    parser.add_argument("--cycle-period", type=float, default=5.0,
                        help="seconds between reset + init cycles (alternately stamped on a recent frame and on the "
                        "latest frame)")
    parser.add_argument("--restart-gap", type=float, default=2.0, help="seconds the camera is gone when restarting")
    parser.add_argument("--inactive", type=float, default=3.0, help="seconds the node stays inactive")
    parser.add_argument("--stamp-jump", type=float, default=30.0,
                        help="seconds the camera's stamps step back (an NTP step; longer than --resume-timeout, so "
                        "that a node waiting for the clock to catch up fails)")
    parser.add_argument("--resume-timeout", type=float, default=10.0, help="seconds tracking has to resume")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images" / "soak.png",
                        help="plot to write; the JSON goes beside it (same name, .json)")
    parser.add_argument("--node-log", type=Path, help="the node's output (default: a temporary file)")
    return parser.parse_args(argv)


def node_argv(args: argparse.Namespace) -> list[str]:
    params = {"checkpoint": args.checkpoint, "device": args.device, "preset": args.preset}
    params = {k: v for k, v in params.items() if v}
    if args.allow_random_weights:
        params["allow_random_weights"] = "true"
    argv = [sys.executable, "-m", "ocean_ros.ros.tracker_node", "--ros-args", "-r", f"__ns:={NAMESPACE}"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    return argv


def wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ocean_ros.rostools.dds import apply_loopback_environment
    from ocean_ros.rostools.session import NodeProcess

    env = apply_loopback_environment()
    log_path = args.node_log or Path(tempfile.mkdtemp(prefix="ocean_soak_")) / "node.log"
    print(f"soak: {args.minutes:g} min, {args.width}x{args.height} at {args.rate:g} Hz, ROS_DOMAIN_ID "
          f"{env['ROS_DOMAIN_ID']} (loopback only); node log {log_path}", flush=True)
    node = NodeProcess(node_argv(args), env, log_path)
    t0 = time.monotonic()
    camera = Camera(Scene(args.width, args.height, args.seed), args.rate, args.malformed, t0, args.seed)
    observer = Observer(camera, t0)
    try:
        if not observer.init_client.wait_for_service(timeout_sec=180) or not camera.wait_matched(60):
            print(f"the node did not become active (no checkpoint? pass --checkpoint or --allow-random-weights):\n"
                  f"{node.tail()}", file=sys.stderr)
            return 2
        camera.t0 = observer.t0 = time.monotonic()  # minute 1 starts when the node is up
        camera.start()
        if not wait_for(lambda: bool(observer.statuses), 60.0):
            print(f"the node answers no frame:\n{node.tail()}", file=sys.stderr)
            return 2
        quiet(camera, False)
        run = run_soak(args, node, observer, camera)
        final = observer.latest_diagnostics()
    finally:
        camera.stop()
        run_exit = node.stop(timeout=20)
        observer.close()
    run.exit_code = run_exit
    rows = minute_rows(run, observer)
    results = criteria(args, run, rows, observer, camera, final)
    print("\n" + table(rows) + "\n")
    print(f"final diagnostics: {summary_line(final)}")
    for c in results:
        print(f"{'N/A ' if c.passed is None else 'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}")
    weights = args.checkpoint or ("RANDOM weights" if args.allow_random_weights else "the node's default model")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(args.out, run, observer, f"ocean_tracker soak: {args.minutes:g} min, {args.width}x{args.height} at "
         f"{args.rate:g} Hz, {weights}")
    report = {
        "settings": {k: portable(v) for k, v in vars(args).items()},
        "weights": weights,
        "minutes": rows,
        "criteria": [asdict(c) for c in results],
        "events": [asdict(e) for e in run.events],
        "malformed_frames": len(camera.malformed),
        "frames_published": camera.published,
        "final_diagnostics": {k: portable(v) for k, v in final.items()},
        "node_exit_code": run.exit_code,
        "crashed_at_s": run.crashed_at,
        "rss_mib": [[round(t, 2), round(v, 2)] for t, v in run.rss],
        "latency_ms": [[round(d.received, 3), round(1000.0 * (d.received - d.published), 2), d.boxes]
                       for d in observer.detections],
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(f"plot {args.out}, data {args.out.with_suffix('.json')}")
    return 0 if all(c.passed is not False for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
