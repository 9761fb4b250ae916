"""``ocean-eval``: run, score and plot the Ocean tracker on benchmark sequences and bags.

  ocean-eval run PATH... --checkpoint W.pth     track sequences offline (core tracker), write results + summary
  ocean-eval run --validation                   the same on the 11-sequence validation set (shipped model)
  ocean-eval score DATASET RESULTS              score result files (any tracker's) against the ground truth
  ocean-eval score --validation RESULTS         score a --validation run's folder
  ocean-eval plot DATASET RESULTS... -o P.png   success / precision plots; --video renders a sequence
  ocean-eval make-longterm SEQ --out DIR        out-of-view / occluded long-term versions (--validation: all 11)
  ocean-eval bag make SEQUENCE OUT_BAG          write a rosbag2 (mcap / sqlite3) from a sequence
  ocean-eval bag replay BAG --checkpoint W.pth  play a bag through the real ocean_tracker node and score it
  ocean-eval bag score BAG                      score detections recorded in a bag against its ground truth
  ocean-eval bag info BAG                       list a bag's topics

Boxes are x,y,w,h. Result files follow each dataset's ground-truth convention (1-based for OTB, UAV123, DTB70 and
LaSOT; 0-based for VOT, GOT-10k and bags), so community toolkits read them too. Beside them, the tracker's
per-frame confidence (confidence/<seq>_confidence.txt) and reported flags (reported/<seq>_reported.txt: 1 where
the tracker claimed the target, 0 where it declared it lost). Tables add lost frames and spans (IoU 0 for 10 or more
frames in a row, 0-based inclusive frame ranges), the confidence AUROC (on-target IoU >= 0.5 vs off-target
IoU < 0.1), one mean row per dataset when there are several, and the worst sequence. Sequences with target-absent
frames (NaN ground truth) add a long-term table (VOT-LT F-score, re-acquisition, false re-acquisitions; see
ocean_ros.eval.longterm), saved as summary_longterm.csv / .json.

--validation: $OCEAN_ROS_DATA/sequences and $OCEAN_ROS_DATA/validation (default data root: ../shared/data),
one-pass on all 11 sequences (the protocol of the validation README's reference numbers).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ocean_ros.eval.sequences import AnnotationError, Sequence

SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"


class UsageError(ValueError):
    """A command-line value that cannot work; printed without a traceback."""


def parse_frames(text: str | None) -> tuple[int, int | None] | None:
    """``START:STOP`` (0-based, STOP exclusive, either may be empty) -> (start, stop)."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"--frames wants START:STOP (0-based, STOP exclusive), got {text!r}")
    try:
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else None
    except ValueError:
        raise UsageError(f"--frames wants integers START:STOP, got {text!r}") from None
    return start, stop


def parse_param(text: str) -> tuple[str, str]:
    """``name:=value`` (ROS style) or ``name=value``."""
    for separator in (":=", "="):
        if separator in text:
            name, value = text.split(separator, 1)
            if name:
                return name, value
    raise UsageError(f"node parameter must be NAME:=VALUE, got {text!r}")


def parse_overrides(items: list[str]) -> tuple[tuple[str, Any], ...]:
    """``NAME=VALUE`` items as (name, value) with the value read as YAML (``false`` → False, ``0.5`` → 0.5)."""
    import yaml

    return tuple((name, yaml.safe_load(value)) for name, value in map(parse_param, items))


# --- shared option groups -----------------------------------------------------------------------------------------
def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequences", nargs="+", metavar="NAME", help="only these sequences (default: all)")
    parser.add_argument("--frames", metavar="START:STOP", help="only these frames of each sequence (0-based)")
    parser.add_argument("--layout", choices=("DTB70",), help="label OTB-style folders DTB70")
    parser.add_argument("--subset", help="UAV123 annotation subset (UAV123, UAV20L, ...)")


def _add_tracker_options(parser: argparse.ArgumentParser) -> None:
    from ocean_ros.core.config import preset_names

    parser.add_argument("--checkpoint", type=Path,
                        help="Ocean weights (TracKit .pth such as OceanV.pth, or an ocean_ros checkpoint); default: "
                        "the shipped Ocean-Lite model")
    parser.add_argument("--preset", choices=preset_names(),
                        help="hyper-parameter preset (default: the one stored with the checkpoint, else OTB2015)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--crop-backend", default="auto", choices=("auto", "opencv", "torch"),
                        help="crop implementation, both TracKit bit-exact (default auto: opencv on CPU, torch on CUDA)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "openvino", "tensorrt"),
                        help="network runtime (default auto: onnxruntime on CPU for Ocean-Lite, else torch); a graph "
                        "backend exports the checkpoint on first use, or takes an ocean-export folder as --checkpoint")
    online = parser.add_mutually_exclusive_group()
    online.add_argument("--online", dest="online", action="store_true", default=None,
                        help="use the online classifier branch")
    online.add_argument("--no-online", dest="online", action="store_false", help="offline Siamese tracker only")


def _add_summary_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocean-eval", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="track sequences or datasets with the core tracker and score them")
    run.add_argument("paths", nargs="*", type=Path, help="sequence or dataset folders (layout detected)")
    run.add_argument("--validation", action="store_true",
                     help="add the 11-sequence validation set (DATA_ROOT/sequences and DATA_ROOT/validation), "
                     "scored one-pass (OTB protocol) unless --protocol says otherwise")
    _add_tracker_options(run)
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="a tracker tunable on top of the preset (names as in the README's parameter table, e.g. "
                     "redetect=false, lost_threshold=0.5); repeatable")
    _add_dataset_options(run)
    run.add_argument("--protocol", default="auto", choices=("auto", "one-pass", "supervised"),
                     help="auto: supervised (re-initialise after failures) for VOT, one-pass otherwise")
    run.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    run.add_argument("--output", type=Path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--name", help="tracker name: results go to OUTPUT/NAME (default: Ocean-PRESET)")
    _add_summary_options(run)

    score = commands.add_parser("score", help="score existing result files against a dataset's ground truth")
    score.add_argument("dataset", type=Path, nargs="?", help="sequence or dataset folder (not with --validation)")
    score.add_argument("results", type=Path, help="folder of result files (<seq>.txt, <seq>/<seq>_001.txt, ...)")
    score.add_argument("--validation", action="store_true",
                       help="score the validation set: RESULTS/sequences and RESULTS/validation, as run writes them")
    _add_dataset_options(score)
    score.add_argument("--output", type=Path, help="where summary.csv / summary.json go (default: RESULTS)")

    plot = commands.add_parser("plot", help="success / precision plots of result sets; render a sequence")
    plot.add_argument("dataset", type=Path, help="sequence or dataset folder")
    plot.add_argument("results", nargs="+", type=Path, help="result folders to compare")
    plot.add_argument("--names", nargs="+", help="legend names (default: the folders' names)")
    _add_dataset_options(plot)
    plot.add_argument("-o", "--output", type=Path, help="PNG with the success and precision plots")
    plot.add_argument("--title", default="", help="plot title (default: the dataset's name)")
    plot.add_argument("--dpi", type=int, default=100)
    plot.add_argument("--video", type=Path, help="render a sequence with ground truth and boxes (.gif, .mp4, .avi)")
    plot.add_argument("--video-sequence", help="which sequence to render (default: the first)")
    plot.add_argument("--fps", type=float, default=15.0, help="frame rate of the rendering")
    plot.add_argument("--scale", type=float, default=1.0, help="resize factor of rendered frames")
    plot.add_argument("--step", type=int, default=1, help="render every STEP-th frame")
    plot.add_argument("--max-frames", type=int, help="render at most this many frames")

    from ocean_ros.eval.cli_longterm import add_make_longterm_parser

    add_make_longterm_parser(commands)
    bag = commands.add_parser("bag", help="rosbag2: make from a sequence, replay through the node, score")
    bag_commands = bag.add_subparsers(dest="bag_command", required=True, metavar="BAG_COMMAND")
    from ocean_ros.eval.cli_bag import build_bag_parsers

    build_bag_parsers(bag_commands)
    return parser


# --- helpers ------------------------------------------------------------------------------------------------------
def _open_sequences(path: Path, args: argparse.Namespace) -> tuple[str, list[Sequence]]:
    from ocean_ros.eval.datasets import open_dataset

    dataset = open_dataset(path, layout=getattr(args, "layout", None), subset=getattr(args, "subset", None))
    dataset = dataset.select(getattr(args, "sequences", None))
    frames = parse_frames(getattr(args, "frames", None))
    sequences = list(dataset.sequences)
    if frames is not None:
        sequences = [s.sliced(*frames) for s in sequences]
    return dataset.name, sequences


def _open_datasets(paths: list[Path], args: argparse.Namespace) -> list[tuple[str, list[Sequence]]]:
    """Every dataset's (name, sequences); ``--sequences`` over several datasets picks from each what it holds."""
    names = getattr(args, "sequences", None)
    if len(paths) < 2 or not names:
        return [_open_sequences(path, args) for path in paths]
    opened = [_open_sequences(path, argparse.Namespace(**{**vars(args), "sequences": None})) for path in paths]
    found = {s.name for _, seqs in opened for s in seqs}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UsageError(f"no sequence {', '.join(unknown)} in {', '.join(str(p) for p in paths)}")
    picked = [(name, [s for s in seqs if s.name in names]) for name, seqs in opened]
    return [(name, seqs) for name, seqs in picked if seqs]


def _groups(scores: list[Any], datasets: list[tuple[str, list[Sequence]]]) -> dict[str, Any] | None:
    """One summary per dataset when there are several (rows ``mean NAME (N)``)."""
    from ocean_ros.eval.scoring import summarize

    if len(datasets) < 2:
        return None
    groups, start = {}, 0
    for name, sequences in datasets:
        groups[name] = summarize(scores[start:start + len(sequences)])
        start += len(sequences)
    return groups


def _emit_summary(scores: list[Any], extras: dict[str, dict[str, Any]] | None, folder: Path | None,
                  meta: dict[str, Any], groups: dict[str, Any] | None = None) -> None:
    from ocean_ros.eval.report import format_table, summary_document, write_csv, write_json
    from ocean_ros.eval.scoring import summarize

    summary = summarize(scores)
    print(format_table(scores, summary, extras, groups))
    if folder is not None:
        write_csv(folder / SUMMARY_CSV, scores, summary, extras, groups)
        write_json(folder / SUMMARY_JSON, summary_document(scores, summary, extras, meta, groups))
        print(f"summary: {folder / SUMMARY_CSV}, {folder / SUMMARY_JSON}")


def _progress(total: int, desc: str, args: argparse.Namespace) -> Any:
    from ocean_ros.eval.progress import progress_bar

    return progress_bar(total, desc, enabled=not getattr(args, "no_progress", False))


# --- commands -----------------------------------------------------------------------------------------------------
def _resolve_weights(args: argparse.Namespace) -> None:
    """Fill in the shipped model when no checkpoint is given, and the checkpoint's own preset when none is."""
    from ocean_ros.core.build import DEFAULT_PRESET
    from ocean_ros.core.network import source_preset
    from ocean_ros.models import default_checkpoint

    if args.checkpoint is None:
        try:
            args.checkpoint = default_checkpoint()
        except FileNotFoundError as err:
            raise UsageError(f"no --checkpoint given and {err}") from None
    if args.preset is None:
        args.preset = source_preset(args.checkpoint) or DEFAULT_PRESET


def _run_paths(args: argparse.Namespace) -> list[Path]:
    from ocean_ros.eval.validation_set import validation_paths

    paths = list(args.paths) + (validation_paths() if args.validation else [])
    if not paths:
        raise UsageError("nothing to run: give sequence or dataset folders, or --validation")
    return paths


def cmd_run(args: argparse.Namespace) -> int:
    from ocean_ros.eval.cli_longterm import report_longterm
    from ocean_ros.eval.results import (
        confidence_path,
        reported_path,
        result_paths,
        write_confidence,
        write_reported,
        write_times,
        write_trajectory,
    )
    from ocean_ros.eval.runner import TrackerSpec, build_tracker, run_one_pass, run_supervised
    from ocean_ros.eval.scoring import score_sequence

    args.paths = _run_paths(args)
    if args.validation and args.protocol == "auto":
        args.protocol = "one-pass"  # the validation set's reference numbers are one-pass, also on its VOT folders
    _resolve_weights(args)
    spec = TrackerSpec(args.checkpoint, args.preset, args.device, args.online, args.crop_backend, args.half,
                       backend=args.backend, overrides=parse_overrides(args.overrides))
    datasets = _open_datasets(args.paths, args)
    tracker = build_tracker(spec)
    name = args.name or spec.name
    root = args.output / name
    total = sum(len(s) for _, seqs in datasets for s in seqs)
    bar = _progress(total, "tracking", args)
    scores, pairs = [], []
    try:
        for dataset_name, sequences in datasets:
            folder = root / dataset_name if len(args.paths) > 1 else root  # as score --validation reads
            for sequence in sequences:
                bar.set_description(sequence.name)
                supervised = args.protocol == "supervised" or (args.protocol == "auto" and sequence.layout == "VOT")
                runner = run_supervised if supervised else run_one_pass
                trajectory = runner(tracker, sequence, bar.update)
                layout = "VOT-supervised" if supervised else sequence.layout
                boxes_path, times_path = result_paths(folder, sequence.name, layout)
                write_trajectory(boxes_path, trajectory, sequence.annotation_offset)
                write_times(times_path, trajectory.times)
                write_confidence(confidence_path(folder, sequence.name, layout), trajectory.scores)
                if trajectory.reported is not None:
                    write_reported(reported_path(folder, sequence.name, layout), trajectory.reported)
                scores.append(score_sequence(sequence, trajectory))
                pairs.append((sequence, trajectory))
                bar.set_postfix_str(f"{sequence.name}: {scores[-1].fps:.1f} fps")
    finally:
        bar.close()
    meta = {"command": "run", "tracker": name, "checkpoint": str(args.checkpoint), "preset": args.preset,
            "device": args.device, "crop_backend": args.crop_backend, "backend": args.backend, "online": args.online,
            "protocol": args.protocol, "datasets": [str(p) for p in args.paths], "frames": args.frames,
            "validation": args.validation, "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"results: {root}")
    _emit_summary(scores, None, root, meta, _groups(scores, datasets))
    report_longterm(pairs, root)
    return 0


def _score_folder(dataset: Path, results: Path, args: argparse.Namespace) -> tuple[str, list[Any]]:
    name, sequences = _open_sequences(dataset, args)
    return name, _score_results(sequences, results, args)


def _score_results(sequences: list[Sequence], results: Path, args: argparse.Namespace,
                   pairs: list[Any] | None = None) -> list[Any]:
    """Scores of each sequence's result file; ``pairs`` collects (sequence, trajectory) when given."""
    from ocean_ros.eval.results import load_result
    from ocean_ros.eval.scoring import score_sequence

    frames = parse_frames(getattr(args, "frames", None))
    scores = []
    for sequence in sequences:
        trajectory = load_result(results, sequence.name, sequence.annotation_offset)
        if frames is not None and len(trajectory) != len(sequence):
            picked = slice(*frames)
            trajectory.boxes = trajectory.boxes[picked]
            for attr in ("markers", "times", "scores", "reported"):
                if getattr(trajectory, attr) is not None:
                    setattr(trajectory, attr, getattr(trajectory, attr)[picked])
        scores.append(score_sequence(sequence, trajectory))
        if pairs is not None:
            pairs.append((sequence, trajectory))
    return scores


def cmd_score(args: argparse.Namespace) -> int:
    from ocean_ros.eval.cli_longterm import report_longterm
    from ocean_ros.eval.validation_set import validation_paths

    if args.validation == (args.dataset is not None):
        raise UsageError("give either DATASET RESULTS or --validation RESULTS")
    pairs: list[Any] = []
    if not args.validation:
        _, sequences = _open_sequences(args.dataset, args)
        scores = _score_results(sequences, args.results, args, pairs)
        meta = {"command": "score", "dataset": str(args.dataset), "results": str(args.results)}
        _emit_summary(scores, None, args.output or args.results, meta)
        report_longterm(pairs, args.output or args.results)
        return 0
    datasets = _open_datasets(validation_paths(), args)
    scores = [s for name, seqs in datasets for s in _score_results(seqs, args.results / name, args, pairs)]
    meta = {"command": "score", "validation": True, "datasets": [str(p) for p in validation_paths()],
            "results": str(args.results)}
    _emit_summary(scores, None, args.output or args.results, meta, _groups(scores, datasets))
    report_longterm(pairs, args.output or args.results)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ocean_ros.eval.plots import plot_curves, render_frames, write_animation
    from ocean_ros.eval.results import load_result
    from ocean_ros.eval.scoring import summarize

    if args.output is None and args.video is None:
        raise UsageError("nothing to draw: give --output for the plots and/or --video for a rendering")
    names = args.names or [p.name for p in args.results]
    if len(names) != len(args.results):
        raise UsageError(f"--names has {len(names)} names for {len(args.results)} result folders")
    if args.output is not None:
        summaries = {}
        dataset_name = args.dataset.name
        for label, folder in zip(names, args.results, strict=True):
            dataset_name, scores = _score_folder(args.dataset, folder, args)
            summaries[label] = summarize(scores)
            print(f"{label}: AUC {summaries[label].auc:.3f}, precision@20px {summaries[label].precision:.3f}")
        print(f"plots: {plot_curves(summaries, args.output, args.title or dataset_name, args.dpi)}")
    if args.video is not None:
        _, sequences = _open_sequences(args.dataset, args)
        if args.video_sequence:
            sequences = [s for s in sequences if s.name == args.video_sequence]
            if not sequences:
                raise UsageError(f"no sequence {args.video_sequence} to render")
        sequence = sequences[0]
        trajectories = {}
        frames = parse_frames(args.frames)
        for label, folder in zip(names, args.results, strict=True):
            trajectory = load_result(folder, sequence.name, sequence.annotation_offset)
            if frames is not None and len(trajectory) != len(sequence):
                trajectory.boxes = trajectory.boxes[slice(*frames)]
            trajectories[label] = trajectory
        rendered = render_frames(sequence, trajectories, args.scale, args.step, args.max_frames)
        print(f"rendering: {write_animation(rendered, args.video, args.fps)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ocean-eval``; returns the exit code (0 ok, 2 usage or data error, 1 run failure)."""
    args = build_parser().parse_args(argv)
    from ocean_ros.eval.cli_bag import BAG_HANDLERS
    from ocean_ros.eval.cli_longterm import cmd_make_longterm

    handlers = {"run": cmd_run, "score": cmd_score, "plot": cmd_plot, "make-longterm": cmd_make_longterm}
    handler = BAG_HANDLERS[args.bag_command] if args.command == "bag" else handlers[args.command]
    from ocean_ros.eval.bag_io import BagError
    from ocean_ros.eval.replay import ReplayError

    try:
        return handler(args)
    except (AnnotationError, BagError, FileNotFoundError, ValueError) as err:
        # ValueError also covers the core refusing a configuration (e.g. --online with offline weights)
        print(f"ocean-eval: error: {err}", file=sys.stderr)
        return 2
    except NotImplementedError as err:
        print(f"ocean-eval: not available: {err}", file=sys.stderr)
        return 2
    except ReplayError as err:
        print(f"ocean-eval: replay failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
