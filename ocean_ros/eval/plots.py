"""Success and precision plots comparing result sets, and sequences rendered with their boxes (video or GIF).

matplotlib (Agg, no display) and Pillow are imported only here, when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Seq
from pathlib import Path

import cv2
import numpy as np

from ocean_ros.eval.metrics import PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS
from ocean_ros.eval.results import Trajectory
from ocean_ros.eval.scoring import Summary
from ocean_ros.eval.sequences import Sequence

# BGR colours for rendered boxes: ground truth first, then one per result set.
BOX_COLOURS = ((0, 255, 0), (0, 0, 255), (255, 128, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0))
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
LINE_STYLES = ("-", "--", ":", "-.")


def plot_curves(summaries: Mapping[str, Summary], out_path: str | Path, title: str = "", dpi: int = 100) -> Path:
    """One PNG with the success plot (left) and precision plot (right) of each named result set.

    Legends carry AUC and precision@20 px, sorted best first, as the OTB toolkit prints them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_path = Path(out_path)
    fig, (ax_s, ax_p) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=dpi)
    # Distinct dash patterns keep identical curves (e.g. offline vs. replay) visible on top of each other.
    styles = {name: LINE_STYLES[k % len(LINE_STYLES)] for k, name in enumerate(summaries)}
    for name, summary in sorted(summaries.items(), key=lambda item: -np.nan_to_num(item[1].auc)):
        ax_s.plot(SUCCESS_THRESHOLDS, summary.success_curve, styles[name], label=f"{name} [{summary.auc:.3f}]",
                  linewidth=1.8)
    for name, summary in sorted(summaries.items(), key=lambda item: -np.nan_to_num(item[1].precision)):
        ax_p.plot(PRECISION_THRESHOLDS, summary.precision_curve, styles[name],
                  label=f"{name} [{summary.precision:.3f}]", linewidth=1.8)
    ax_s.set(xlabel="Overlap threshold", ylabel="Success rate", xlim=(0, 1), ylim=(0, 1.02),
             title="Success plot (legend: AUC)")
    ax_p.set(xlabel="Location error threshold (px)", ylabel="Precision", xlim=(0, 50), ylim=(0, 1.02),
             title="Precision plot (legend: at 20 px)")
    ax_p.axvline(20, color="0.7", linewidth=0.8, linestyle="--")
    for ax, loc in ((ax_s, "upper right"), (ax_p, "upper left")):
        ax.grid(True, linewidth=0.4, alpha=0.6)
        ax.legend(loc=loc, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def _draw_box(canvas: np.ndarray, box: np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
    if not np.all(np.isfinite(box)):
        return
    x, y, w, h = (float(v) for v in box)
    cv2.rectangle(canvas, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))), colour,
                  thickness, cv2.LINE_AA)


def render_frames(sequence: Sequence, trajectories: Mapping[str, Trajectory], scale: float = 1.0,
                  step: int = 1, max_frames: int | None = None) -> list[np.ndarray]:
    """Frames (BGR) with the ground truth (green) and each trajectory's box drawn, with a legend and frame number."""
    names = list(trajectories)
    frames = []
    indices = list(range(0, len(sequence), max(step, 1)))[:max_frames]
    for i in indices:
        canvas = sequence.read(i)
        if scale != 1.0:
            canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        thickness = max(1, int(round(2 * scale)))
        _draw_box(canvas, sequence.ground_truth[i] * scale, BOX_COLOURS[0], thickness)
        for k, name in enumerate(names):
            _draw_box(canvas, trajectories[name].boxes[i] * scale, BOX_COLOURS[1 + k % 5], thickness)
        labels = [("ground truth", BOX_COLOURS[0])] + [(n, BOX_COLOURS[1 + k % 5]) for k, n in enumerate(names)]
        cv2.putText(canvas, f"#{i + 1}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        for row, (label, colour) in enumerate(labels):
            cv2.putText(canvas, label, (6, 36 + 16 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        frames.append(canvas)
    return frames


def write_animation(frames: Seq[np.ndarray], out_path: str | Path, fps: float = 15.0) -> Path:
    """Write BGR frames as a GIF (``.gif``, via Pillow) or a video (``.mp4``/``.avi``, via OpenCV)."""
    out_path = Path(out_path)
    if not frames:
        raise ValueError("no frames to write")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = out_path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames]
        images[0].save(out_path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
                       loop=0, optimize=True)
        return out_path
    if suffix not in VIDEO_CODECS:
        raise ValueError(f"unsupported output {out_path.name}: use .gif, {', '.join(VIDEO_CODECS)}")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[suffix]), fps, (width, height))
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write {out_path} (codec {VIDEO_CODECS[suffix]})")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return out_path
