"""The validation set by name: the 11 sequences in the shared data's ``sequences/`` (4) and ``validation/`` (7).

The data root is ``$OCEAN_ROS_DATA``, else ``../shared/data`` beside the repository root (the one definition;
training imports it from here). Never train on these sequences.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "OCEAN_ROS_DATA"
VALIDATION_FOLDERS = ("sequences", "validation")
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The shared data folder: $OCEAN_ROS_DATA, else ../shared/data beside the repository root."""
    return Path(os.environ.get(DATA_ENV, REPO_ROOT.parent / "shared" / "data"))


def validation_paths(root: Path | None = None) -> list[Path]:
    """The validation set's dataset folders under ``root`` (default :func:`data_root`); FileNotFoundError naming
    the missing one and the variable to set."""
    root = data_root() if root is None else Path(root)
    paths = [root / name for name in VALIDATION_FOLDERS]
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"validation folder {path} not found (set {DATA_ENV} to the shared data folder)")
    return paths
