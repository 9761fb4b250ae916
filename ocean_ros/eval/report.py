"""Summary tables of an evaluation: terminal text, CSV and JSON (with curves) from sequence scores.

Rows: one per sequence, then optional group rows (e.g. the mean of each dataset of a run over several), then
OVERALL; the text table ends with the worst sequence (lowest AUC). ``lost`` counts the frames in lost spans,
``lost spans`` lists them (0-based, inclusive), ``AUROC`` is the confidence AUROC (pooled in group rows and
OVERALL).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ocean_ros.eval.scoring import SequenceScore, Summary

# (column title, attribute, format); columns whose values are all missing are left out of the text table.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("frames", "frames", "d"),
    ("AUC", "auc", ".3f"),
    ("P@20", "precision", ".3f"),
    ("NP@0.2", "norm_precision", ".3f"),
    ("OP50", "success_50", ".3f"),
    ("AO", "ao", ".3f"),
    ("SR0.5", "sr_50", ".3f"),
    ("SR0.75", "sr_75", ".3f"),
    ("Acc", "accuracy", ".3f"),
    ("fail", "failures", "d"),
    ("lost", "lost_frames", "d"),
    ("AUROC", "conf_auroc", ".3f"),
    ("fps", "fps", ".1f"),
    ("lost spans", "lost_spans", "s"),
)
Groups = Mapping[str, Summary]


def group_label(name: str, summary: Summary) -> str:
    """Row name of a group: ``mean NAME (N)``."""
    return f"mean {name} ({summary.sequences})"


def worst_sequence(scores: list[SequenceScore]) -> SequenceScore | None:
    """The one-pass sequence with the lowest AUC (None when there is none)."""
    scored = [s for s in scores if s.protocol == "one-pass" and math.isfinite(s.auc)]
    return min(scored, key=lambda s: s.auc) if scored else None


def _missing(value: object) -> bool:
    empty = isinstance(value, (list, tuple, str)) and len(value) == 0
    return value is None or empty or (isinstance(value, float) and not math.isfinite(value))


def _cell(value: object, fmt: str) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(f"{a}-{b}" for a, b in value)
    return format(value, fmt)


def _records(scores: list[SequenceScore], summary: Summary, groups: Groups | None
             ) -> list[tuple[str, SequenceScore | Summary]]:
    groups = groups or {}
    return ([(s.name, s) for s in scores] + [(group_label(n, g), g) for n, g in groups.items()]
            + [("OVERALL", summary)])


def _rows(scores: list[SequenceScore], summary: Summary, extras: Mapping[str, Mapping[str, object]],
          groups: Groups | None = None) -> tuple[list[str], list[list[str]]]:
    records = _records(scores, summary, groups)
    columns = [c for c in COLUMNS if any(not _missing(getattr(obj, c[1], None)) for _, obj in records)]
    extra_keys: list[str] = []
    for values in extras.values():
        extra_keys += [k for k in values if k not in extra_keys]
    header = ["sequence"] + [c[0] for c in columns] + extra_keys
    rows = []
    for name, obj in records:
        row = [name] + [_cell(getattr(obj, attr, None), fmt) for _, attr, fmt in columns]
        values = extras.get(name, {})
        row += [_cell(values.get(k), "d" if isinstance(values.get(k), int) else ".1f") for k in extra_keys]
        rows.append(row)
    return header, rows


def format_table(scores: list[SequenceScore], summary: Summary,
                 extras: Mapping[str, Mapping[str, object]] | None = None, groups: Groups | None = None) -> str:
    """Aligned text table: one row per sequence, one per group, OVERALL and the worst sequence; ``extras`` adds
    columns per row name. The free-text ``lost spans`` column is left-aligned."""
    header, rows = _rows(scores, summary, extras or {}, groups)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = {0} | {i for i, title in enumerate(header) if title == "lost spans"}

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs).rstrip()

    rule = "  ".join("-" * w for w in widths)
    count = len(scores)
    lines = [line(header), rule, *(line(r) for r in rows[:count]), rule, *(line(r) for r in rows[count:])]
    worst = worst_sequence(scores)
    if worst is not None and len(scores) > 1:
        lines.append(f"worst: {worst.name} (AUC {worst.auc:.3f}, P@20 {_cell(worst.precision, '.3f')})")
    return "\n".join(lines)


def write_csv(path: Path, scores: list[SequenceScore], summary: Summary,
              extras: Mapping[str, Mapping[str, object]] | None = None, groups: Groups | None = None) -> None:
    """One CSV row per sequence, per group and OVERALL, every scalar metric as a column (empty where not
    applicable)."""
    extras = extras or {}
    per_sequence = [s.as_dict() for s in scores]
    grouped = [{"name": group_label(n, g), **g.as_dict()} for n, g in (groups or {}).items()]
    overall = {"name": "OVERALL", **summary.as_dict()}
    rows = [{**d, **extras.get(str(d["name"]), {})} for d in [*per_sequence, *grouped, overall]]
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if _missing(row.get(k)) else row.get(k) for k in keys})


def summary_document(scores: list[SequenceScore], summary: Summary,
                     extras: Mapping[str, Mapping[str, object]] | None = None,
                     meta: Mapping[str, object] | None = None, groups: Groups | None = None) -> dict[str, object]:
    """The JSON document: meta, overall (with curves), groups, the worst sequence and per-sequence scores (with
    curves, lost spans and per-frame IoU and score)."""
    extras = extras or {}
    worst = worst_sequence(scores)
    document: dict[str, object] = {
        "meta": dict(meta or {}),
        "overall": {**summary.as_dict(curves=True), **extras.get("OVERALL", {})},
    }
    if groups:
        document["groups"] = {name: g.as_dict() for name, g in groups.items()}
    if worst is not None:
        document["worst"] = {"name": worst.name, "auc": worst.auc, "precision": worst.precision}
    document["sequences"] = [{**s.as_dict(curves=True), **extras.get(s.name, {})} for s in scores]
    return document


def json_ready(value: object) -> object:
    """``value`` with NaN/inf floats as None and numpy scalars and arrays as plain Python (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path: Path, document: Mapping[str, object]) -> None:
    """Strict JSON (no NaN), indented."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(document), indent=2, allow_nan=False) + "\n")
