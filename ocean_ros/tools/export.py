"""``ocean-export``: export an Ocean checkpoint's network as ONNX graphs plus ``manifest.json``.

The folder runs on ONNX Runtime, OpenVINO or TensorRT (``backend`` parameter / ``--backend``; pass the folder as the
checkpoint). Without options the graphs cover the search sizes and the object-aware setting of the checkpoint's own
preset (``--preset`` to choose another); the online feature graph is written where the checkpoint has one.
"""

from __future__ import annotations

import argparse
import sys

from ocean_ros.core.checkpoint import CheckpointError
from ocean_ros.core.config import preset_names
from ocean_ros.core.export import DEFAULT_OPSET, ExportError, export_checkpoint
from ocean_ros.core.manifest import ExportManifestError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocean-export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="Ocean checkpoint (.pth; TracKit or ocean_ros format)")
    parser.add_argument("--out", required=True, help="output folder (created; must be empty)")
    parser.add_argument("--search-sizes", type=int, nargs="+",
                        help="search crop sides to export (default: the preset's small_sz and big_sz)")
    parser.add_argument("--preset", choices=preset_names(),
                        help="preset whose search sizes and align flag to export (default: the checkpoint's own)")
    align = parser.add_mutually_exclusive_group()
    align.add_argument("--align", dest="align", action="store_true", default=None,
                       help="also output the object-aware map (the checkpoint must have the head)")
    align.add_argument("--no-align", dest="align", action="store_false", help="no object-aware map")
    parser.add_argument("--no-online", dest="online", action="store_false",
                        help="skip the online feature graph even where the checkpoint has a classifier")
    parser.add_argument("--half", action="store_true", help="float16 graphs (for TensorRT fp16 engines)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--device", default="cpu", help="device the graphs are traced on (cuda is faster with --half)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manifest = export_checkpoint(
            args.checkpoint, args.out, search_sizes=args.search_sizes, preset=args.preset, align=args.align,
            online=args.online, half=args.half, opset=args.opset, device=args.device,
        )
    except (CheckpointError, ExportError, ExportManifestError, OSError) as err:
        print(f"ocean-export: {err}", file=sys.stderr)
        return 1
    graphs = 1 + len(manifest.search) + (manifest.online is not None)
    print(
        f"exported {manifest.arch} ({manifest.precision}, opset {manifest.opset}, preset {manifest.preset}): "
        f"{graphs} graphs, search sizes {list(manifest.search_sizes)}, object-aware map {manifest.align}, "
        f"online features {manifest.online is not None} → {manifest.folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
