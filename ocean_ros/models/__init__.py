"""Models shipped with the package: Ocean-Lite, trained by ``ocean-train`` (model card: README.md here)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL", "default_checkpoint"]

DEFAULT_MODEL = Path(__file__).resolve().parent / "ocean_lite.pth"


def default_checkpoint() -> Path:
    """The checkpoint used when none is given: the shipped Ocean-Lite model (FileNotFoundError if absent)."""
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            f"the shipped model {DEFAULT_MODEL} is missing: reinstall ocean_ros or pass a checkpoint"
        )
    return DEFAULT_MODEL
