"""Summary tables of an evaluation: terminal text, CSV and JSON (with curves) from sequence scores."""

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
    ("fps", "fps", ".1f"),
)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _cell(value: object, fmt: str) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, str):
        return value
    return format(value, fmt)


def _rows(scores: list[SequenceScore], summary: Summary, extras: Mapping[str, Mapping[str, object]]
          ) -> tuple[list[str], list[list[str]]]:
    records = [(s.name, s) for s in scores] + [("OVERALL", summary)]
    columns = [c for c in COLUMNS if any(not _missing(getattr(obj, c[1])) for _, obj in records)]
    extra_keys: list[str] = []
    for values in extras.values():
        extra_keys += [k for k in values if k not in extra_keys]
    header = ["sequence"] + [c[0] for c in columns] + extra_keys
    rows = []
    for name, obj in records:
        row = [name] + [_cell(getattr(obj, attr), fmt) for _, attr, fmt in columns]
        values = extras.get(name, {})
        row += [_cell(values.get(k), "d" if isinstance(values.get(k), int) else ".1f") for k in extra_keys]
        rows.append(row)
    return header, rows


def format_table(scores: list[SequenceScore], summary: Summary,
                 extras: Mapping[str, Mapping[str, object]] | None = None) -> str:
    """Aligned text table: one row per sequence and an OVERALL row; ``extras`` adds columns per row name."""
    header, rows = _rows(scores, summary, extras or {})
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


def write_csv(path: Path, scores: list[SequenceScore], summary: Summary,
              extras: Mapping[str, Mapping[str, object]] | None = None) -> None:
    """One CSV row per sequence plus OVERALL, every scalar metric as a column (empty where not applicable)."""
    extras = extras or {}
    per_sequence = [s.as_dict() for s in scores]
    overall = {"name": "OVERALL", **summary.as_dict()}
    rows = [{**d, **extras.get(str(d["name"]), {})} for d in [*per_sequence, overall]]
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
                     meta: Mapping[str, object] | None = None) -> dict[str, object]:
    """The JSON document: meta, overall (with curves) and per-sequence scores (with curves)."""
    extras = extras or {}
    return {
        "meta": dict(meta or {}),
        "overall": {**summary.as_dict(curves=True), **extras.get("OVERALL", {})},
        "sequences": [{**s.as_dict(curves=True), **extras.get(s.name, {})} for s in scores],
    }


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
