"""``ocean-eval make-longterm`` and the long-term part of ``run`` / ``score`` reports.

``make-longterm SEQ --out DIR`` writes ``DIR/<seq>-<mode>-<absence>s`` (:mod:`ocean_ros.eval.make_longterm`);
``--validation`` writes the 11 validation sequences x absences of 1 s and 3 s x pan and occlude (with
``--extend``, so the shorter sequences fit 3 s). When scored sequences have target-absent frames, ``run`` and
``score`` add the long-term table (:mod:`ocean_ros.eval.longterm`) and write ``summary_longterm.csv`` /
``summary_longterm.json`` beside the summary.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

from ocean_ros.eval.longterm import (
    LongTermFrames,
    LongTermScore,
    has_absences,
    longterm_frames,
    score_longterm,
    summarize_longterm,
)
from ocean_ros.eval.results import Trajectory
from ocean_ros.eval.sequences import Sequence

LONGTERM_CSV = "summary_longterm.csv"
LONGTERM_JSON = "summary_longterm.json"
VALIDATION_ABSENCES = (1.0, 3.0)

# (title, attribute, format)
LT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("frames", "frames", "d"), ("absent", "absent_frames", "d"), ("returns", "returns", "d"),
    ("F", "f_score", ".3f"), ("tau", "threshold", ".3f"), ("Pr", "precision", ".3f"), ("Re", "recall", ".3f"),
    ("reacq", "reacquired_rate", ".3f"), ("missed", "missed", "d"), ("falseRe", "false_reacquisition_rate", ".3f"),
    ("afterLoss", "false_after_loss", "d"), ("empty", "absent_empty_rate", ".3f"),
    ("delayMed", "delay_median", ".1f"), ("delayMax", "delay_max", ".0f"),
)


def add_make_longterm_parser(commands: Any) -> None:
    """The ``make-longterm`` sub-command's options."""
    from ocean_ros.eval.make_longterm import MODES

    make = commands.add_parser("make-longterm", help="write out-of-view / occluded long-term versions of sequences")
    make.add_argument("sequence", type=Path, nargs="?", help="sequence folder (any supported layout)")
    make.add_argument("--out", type=Path, required=True, help="folder for the generated sequence folders")
    make.add_argument("--validation", action="store_true",
                      help="all 11 validation sequences x absences 1 s and 3 s x pan and occlude (with --extend)")
    make.add_argument("--mode", default="pan", choices=MODES, help="pan: the camera looks away; occlude: a patch")
    make.add_argument("--absence-s", type=float, default=1.0, help="how long the target is gone, seconds")
    make.add_argument("--fps", type=float, help="frame rate (default: the sequence's source.json, else 30)")
    make.add_argument("--start", type=int, help="first absent frame, 0-based (default: a third of the sequence)")
    make.add_argument("--window", type=float, help="pan: window side as a fraction of the frame's (default: auto)")
    make.add_argument("--extend", action="store_true", help="play the frames back and forth when too short")
    make.add_argument("--format", default="jpg", choices=("jpg", "png"), help="frame files (default jpg)")
    make.add_argument("--jpeg-quality", type=int, default=95)
    make.add_argument("--layout", choices=("DTB70",), help="label OTB-style folders DTB70")


def cmd_make_longterm(args: argparse.Namespace) -> int:
    """Generate as the options say; one line per sequence written."""
    from ocean_ros.eval.cli import UsageError
    from ocean_ros.eval.make_longterm import LongTermOptions, make_longterm

    if args.validation == (args.sequence is not None):
        raise UsageError("give either SEQUENCE or --validation")
    base = dict(fps=args.fps, start=args.start, window=args.window, image_format=args.format,
                jpeg_quality=args.jpeg_quality)
    if args.validation:
        jobs = [(s, LongTermOptions(mode=m, absence_s=a, extend=True, **base))
                for s in _validation_sequences() for a in VALIDATION_ABSENCES for m in ("pan", "occlude")]
    else:
        from ocean_ros.eval.datasets import read_sequence_folder

        found = read_sequence_folder(args.sequence, args.layout)
        if len(found) != 1:
            raise UsageError(f"{args.sequence} holds {len(found)} targets; give one sequence")
        options = LongTermOptions(mode=args.mode, absence_s=args.absence_s, extend=args.extend, **base)
        jobs = [(found[0], options)]
    for sequence, options in jobs:
        plan = make_longterm(sequence, args.out, options)
        first, last = plan.absence
        print(f"{args.out / plan.name}: {len(plan.source_frames)} frames {plan.size[0]}x{plan.size[1]} at "
              f"{plan.fps:g} fps, absent {first}-{last} ({last - first + 1} frames, asked {plan.requested})"
              + (", extended" if plan.notes.get("extended") else ""))
    return 0


def _validation_sequences() -> list[Sequence]:
    from ocean_ros.eval.datasets import open_dataset
    from ocean_ros.eval.validation_set import validation_paths

    return [s for path in validation_paths() for s in open_dataset(path).sequences]


def longterm_inputs(pairs: Seq[tuple[Sequence, Trajectory]]) -> list[LongTermFrames]:
    """The long-term inputs of the one-pass pairs whose ground truth has absent frames."""
    return [longterm_frames(t.boxes, t.scores, t.reported, s.ground_truth, s.name)
            for s, t in pairs if not t.supervised and has_absences(s.ground_truth)]


def format_longterm(scores: Seq[LongTermScore]) -> str:
    """Aligned text table, one row per score."""
    header = ["long-term"] + [title for title, _, _ in LT_COLUMNS]
    rows = [[s.name] + ["-" if _missing(getattr(s, attr)) else format(getattr(s, attr), fmt)
                        for _, attr, fmt in LT_COLUMNS] for s in scores]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [header, *rows]]
    return "\n".join(lines)


def _csv_cell(value: object) -> object:
    """Spans as ``first-last`` and lists space-separated; missing values empty."""
    if isinstance(value, list):
        return " ".join(f"{v[0]}-{v[1]}" if isinstance(v, list) else ("-" if v is None else str(v)) for v in value)
    return "" if value is None else value


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def report_longterm(pairs: Seq[tuple[Sequence, Trajectory]], folder: Path | None) -> list[LongTermScore]:
    """Print and (with ``folder``) save the long-term metrics of the sequences with absent frames; nothing when
    there is none. Rows: each such sequence, then OVERALL (see :func:`summarize_longterm`)."""
    from ocean_ros.eval.report import write_json

    inputs = longterm_inputs(pairs)
    if not inputs:
        return []
    scores = [score_longterm(f) for f in inputs] + [summarize_longterm(inputs)]
    print(format_longterm(scores))
    if any(t.reported is None for s, t in pairs if s.name in {f.name for f in inputs}):
        print("note: results without reported flags: every finite box counts as reported")
    if folder is not None:
        rows = [s.as_dict() for s in scores]
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / LONGTERM_CSV).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        write_json(folder / LONGTERM_JSON, {"sequences": rows[:-1], "overall": rows[-1]})
        print(f"long-term: {folder / LONGTERM_CSV}, {folder / LONGTERM_JSON}")
    return scores
