"""The single schema of every tracker tunable, its validation and the published TracKit presets.

Each field of :class:`TrackerConfig` carries metadata (description with units, allowed range or choices,
whether it may change while a target is tracked). The ROS parameter layer and the YAML files are derived from
:meth:`TrackerConfig.parameters`; nothing else defines tunables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CUSTOM_PRESET",
    "PRESETS",
    "ParamSpec",
    "TrackerConfig",
    "check_value",
    "param_field",
    "preset_names",
    "schema_of",
]

CUSTOM_PRESET = "custom"
CROP_BACKENDS = ("auto", "opencv", "torch")
NETWORK_BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")


@dataclass(frozen=True)
class ParamSpec:
    """Metadata of one tunable: what the ROS layer needs to declare it as a parameter."""

    name: str
    type: type
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[Any, ...] | None = None
    runtime_safe: bool = False


def param_field(
    default: Any,
    description: str,
    *,
    range: tuple[float, float] | None = None,
    choices: tuple[Any, ...] | None = None,
    runtime_safe: bool = False,
) -> Any:
    """A dataclass field carrying :class:`ParamSpec` metadata (for schema classes such as TrackerConfig)."""
    meta = {"description": description, "range": range, "choices": choices, "runtime_safe": runtime_safe}
    return field(default=default, metadata=meta)


def schema_of(cls: type) -> tuple[ParamSpec, ...]:
    """The :class:`ParamSpec` of every field of a dataclass built with :func:`param_field`, in order."""
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        specs.append(
            ParamSpec(
                name=f.name,
                type=type(f.default),
                default=f.default,
                description=meta["description"],
                range=meta["range"],
                choices=meta["choices"],
                runtime_safe=meta["runtime_safe"],
            )
        )
    return tuple(specs)


# Values of TracKit's experiments/test/*/Ocean.yaml (spec §5.8); fields not named keep the dataclass default.
PRESETS: dict[str, dict[str, Any]] = {
    "OTB2015": dict(penalty_k=0.087, lr=0.408, window_influence=0.366, small_sz=271, big_sz=271, align=False),
    "VOT2018": dict(
        penalty_k=0.021, lr=0.730, window_influence=0.321, small_sz=255, big_sz=271, align=True,
        align_ratio=0.93,
    ),
    "VOT2019": dict(
        penalty_k=0.062, lr=0.765, window_influence=0.380, small_sz=255, big_sz=271, align=True,
        align_ratio=0.94,
    ),
    "GOT10K": dict(penalty_k=0.022, lr=0.799, window_influence=0.118, small_sz=255, big_sz=255, align=False),
    "LASOT": dict(penalty_k=0.11, lr=0.7, window_influence=0.20, small_sz=255, big_sz=255, align=False),
    "VOT2018ON": dict(
        penalty_k=0.187, lr=0.800, window_influence=0.640, small_sz=271, big_sz=287, align=False, online=True,
        online_ratio=0.5,
    ),
    "VOT2019ON": dict(
        penalty_k=0.06, lr=0.644, window_influence=0.484, small_sz=255, big_sz=287, align=False, online=True,
        online_ratio=0.7,
    ),
    # General-purpose online preset. TracKit has no online values for non-VOT data (its OTB/GOT10K/LaSOT
    # online lookups fail, spec §5.8); its own demo on arbitrary video (`run_video.py`) runs VOT2019ON with
    # ONLINE.yaml, the only online configuration the authors use outside a benchmark. ONLINE is that pairing
    # under a name that does not suggest a benchmark: the VOT2019 Siamese values (no object-aware head, 255
    # search, 287 for small targets), online_ratio 0.7 and the ONLINE.yaml online defaults below.
    "ONLINE": dict(
        penalty_k=0.06, lr=0.644, window_influence=0.484, small_sz=255, big_sz=287, align=False, online=True,
        online_ratio=0.7,
    ),
    # Ocean-Lite (our NanoTrack-v3-trunk model, stride 16; ocean_ros/models/). Siamese values from a coordinate
    # search on the four old validation sequences; the object-aware head did not help (align_ratio 1.0), so it is
    # not computed. Online update on, penalty_k, online_ratio and the weights themselves chosen by leave-one-out
    # cross-validation over the 11-sequence validation set (`python -m ocean_ros.train.tune`; model card): held-out
    # mean AUC 0.594 against 0.534 offline. lost_threshold: the cross-validated balanced-accuracy threshold.
    "LITE": dict(
        total_stride=16, penalty_k=0.16, lr=0.15, window_influence=0.35, small_sz=287, big_sz=255,
        context_amount=0.45, align=False, align_ratio=1.0,
        online=True, online_ratio=0.5, online_update_interval=10, online_search_area_scale=3.0,
        lost_threshold=0.42,
    ),
}


def preset_names() -> tuple[str, ...]:
    """Names accepted by :meth:`TrackerConfig.from_preset`."""
    return tuple(PRESETS)


@dataclass(frozen=True)
class TrackerConfig:
    """Every tunable of the Ocean tracker. Immutable; derive variants with :meth:`replace`.

    Defaults are TracKit's ``OceanConfig`` defaults (spec §5.2) with the object-aware head off.
    """

    preset: str = param_field(
        CUSTOM_PRESET,
        "preset the values were taken from ('custom' when none); from_dict starts from this preset",
        choices=(CUSTOM_PRESET, *PRESETS),
    )
    penalty_k: float = param_field(
        0.062, "scale/aspect change penalty strength k in exp(-(r_c*s_c - 1)*k) (unitless)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    window_influence: float = param_field(
        0.38, "weight of the cosine window blended into the penalised score (unitless)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    lr: float = param_field(
        0.765, "size learning rate; the effective size update rate is (penalty*score*lr)^2 (unitless)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    small_sz: int = param_field(
        255, "search crop side for normal targets (px, (side - exemplar_size) divisible by total_stride)",
        range=(135, 639),
    )
    big_sz: int = param_field(
        271, "search crop side for small targets (px, (side - exemplar_size) divisible by total_stride)",
        range=(135, 639),
    )
    small_target_area: float = param_field(
        0.004, "target area / image area below which big_sz is used; decided at each initialize (ratio)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    exemplar_size: int = param_field(127, "template crop side (px); only 127 is supported", choices=(127,))
    total_stride: int = param_field(
        8, "network stride between score cells (search px); must equal the network's (8 Ocean, 16 Ocean-Lite)",
        choices=(8, 16),
    )
    context_amount: float = param_field(
        0.5, "context added around the target: crop side = sqrt((w+c*(w+h))*(h+c*(w+h))) (ratio)",
        range=(0.0, 4.0),
    )
    align: bool = param_field(
        False, "fuse the object-aware (deformable) classification head; the model must have one"
    )
    align_ratio: float = param_field(
        0.94, "weight of the plain head in ratio*sigma(cls) + (1-ratio)*sigma(align) (unitless)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    online: bool = param_field(
        False, "use the online classifier and fuse its score map (not combinable with align)"
    )
    online_ratio: float = param_field(
        0.7, "weight of the online map in ratio*online + (1-ratio)*siamese (unitless)",
        range=(0.0, 1.0), runtime_safe=True,
    )
    crop_backend: str = param_field(
        "auto", "crop implementation: 'torch' (on the device), 'opencv' (host; both reproduce TracKit's crops "
        "bit-exactly) or 'auto' (opencv on CPU, where it is ~20x faster, torch on CUDA)",
        choices=CROP_BACKENDS,
    )
    backend: str = param_field(
        "auto", "network runtime: 'torch' (the reference), 'onnxruntime' or 'openvino' (CPU) or 'tensorrt' "
        "(CUDA), the last three running the graphs exported from the checkpoint (exported on first use into a "
        "cache keyed by its sha256), or 'auto' (onnxruntime on CPU for Ocean-Lite, torch otherwise)",
        choices=NETWORK_BACKENDS,
    )
    half: bool = param_field(
        False, "run the network in float16 (CUDA only); post-processing stays float32 or wider"
    )
    cuda_graphs: bool = param_field(
        True, "on CUDA, run each frame as one captured graph over fixed device buffers (torch crops; falls "
        "back to eager with one warning if capture fails); ignored on CPU"
    )
    lost_threshold: float = param_field(
        0.3, "score (fused sigmoid at the peak, 0..1) below which a frame counts as low",
        range=(0.0, 1.0), runtime_safe=True,
    )
    lost_frames: int = param_field(
        5, "consecutive low-score frames after which the state becomes LOST (frames)",
        range=(1, 10000), runtime_safe=True,
    )
    # --- online classifier (TracKit's experiments/test/VOT/ONLINE.yaml; used only when online is set)
    online_search_area_scale: float = param_field(
        4.0, "side of the online sample region in target sides, sqrt(search_area) = scale*sqrt(w*h) (ratio)",
        range=(1.0, 10.0),
    )
    online_init_iterations: int = param_field(
        25, "optimiser steps that train the online filter on the first frame (steps)", range=(0, 200),
    )
    online_update_iterations: int = param_field(
        3, "optimiser steps at each scheduled online update (steps)", range=(0, 50), runtime_safe=True,
    )
    online_hard_negative_iterations: int = param_field(
        3, "optimiser steps on a hard-negative frame (steps)", range=(0, 50), runtime_safe=True,
    )
    online_update_interval: int = param_field(
        10, "scheduled online update every this many frames (frames; TracKit's train_skipping)",
        range=(1, 1000), runtime_safe=True,
    )
    online_memory_size: int = param_field(
        250, "online training memory (samples); must exceed the initial samples", range=(2, 5000),
    )
    online_learning_rate: float = param_field(
        0.0075, "memory weight learning rate of a normal frame (unitless)", range=(0.0, 1.0), runtime_safe=True,
    )
    online_hard_negative_learning_rate: float = param_field(
        0.02, "memory weight learning rate of a hard-negative frame (unitless)", range=(0.0, 1.0),
        runtime_safe=True,
    )
    online_augmentation: bool = param_field(
        True, "augment the first frame (4 shifts, flip, 5 blurs, 12 rotations, dropout copies) for the online "
        "filter; otherwise it trains on the identity sample alone",
    )
    online_dropout_copies: int = param_field(
        7, "channel-dropout copies of the identity sample's features at initialisation (samples)", range=(0, 64),
    )
    online_dropout_prob: float = param_field(
        0.2, "channel-dropout probability of those copies (probability)", range=(0.0, 0.9),
    )
    online_random_shift_factor: float = param_field(
        1.0 / 3.0, "random shift of the flip/blur/rotation samples, uniform in ±factor*224/2 (fraction of side)",
        range=(0.0, 1.0),
    )
    online_seed: int = param_field(
        1234, "seed of the initial augmentation's random shifts and dropout masks (integer)",
        range=(0, 2**31 - 1),
    )
    online_not_found_threshold: float = param_field(
        0.0, "online peak score below which the frame is flagged not_found (raw score)", range=(-100.0, 100.0),
        runtime_safe=True,
    )
    online_distractor_threshold: float = param_field(
        100.0, "second/first peak ratio above which the distance test decides (ratio)", range=(0.0, 1000.0),
        runtime_safe=True,
    )
    online_hard_negative_threshold: float = param_field(
        0.45, "second/first peak ratio above which the frame is flagged hard_negative (ratio)",
        range=(0.0, 10.0), runtime_safe=True,
    )
    online_neighborhood_scale: float = param_field(
        2.2, "side of the target neighbourhood masked before the second peak, in target sizes (ratio)",
        range=(0.0, 20.0), runtime_safe=True,
    )
    online_displacement_scale: float = param_field(
        0.7, "radius of the distractor distance test: scale*sqrt(H*W)/2 score cells (ratio)",
        range=(0.0, 10.0), runtime_safe=True,
    )

    def __post_init__(self) -> None:
        for spec in self.parameters():
            value = check_value(spec, getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)
        for name in ("small_sz", "big_sz"):
            size = getattr(self, name)
            if (size - self.exemplar_size) % self.total_stride:
                raise ValueError(
                    f"{name}={size}: (size - exemplar_size {self.exemplar_size}) must be divisible by "
                    f"total_stride {self.total_stride}"
                )
        # identity sample + 22 image transforms + dropout copies (OnlineParams.num_initial_samples)
        initial = 1 + (22 + self.online_dropout_copies if self.online_augmentation else 0)
        if self.online_memory_size <= initial:
            raise ValueError(
                f"online_memory_size={self.online_memory_size} must exceed the {initial} initial online samples"
            )
        if self.align and self.online:
            raise ValueError(
                "align and online are exclusive: TracKit never fuses the object-aware head online"
            )

    # --- schema -------------------------------------------------------------------------------------------
    @classmethod
    def parameters(cls) -> tuple[ParamSpec, ...]:
        """Every tunable with its metadata, in declaration order."""
        return schema_of(cls)

    @classmethod
    def runtime_safe_names(cls) -> frozenset[str]:
        """Names of the fields that may change while a target is tracked."""
        return frozenset(s.name for s in cls.parameters() if s.runtime_safe)

    def items(self) -> Iterator[tuple[ParamSpec, Any]]:
        """(metadata, current value) for every field."""
        for spec in self.parameters():
            yield spec, getattr(self, spec.name)

    # --- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrackerConfig:
        """The published preset ``name`` (spec §5.8), with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
        _reject_unknown(overrides)
        if "preset" in overrides:
            raise ValueError(
                "'preset' cannot be overridden in from_preset; pass the name as the first argument"
            )
        values = {**PRESETS[name], **overrides}
        return cls(preset=name, **values)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackerConfig:
        """Build from a mapping; a ``preset`` key supplies the starting values, the other keys override them.

        Unknown keys and out-of-range values raise ValueError naming them.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a mapping of config values, got {type(d).__name__}")
        _reject_unknown(d)
        values = dict(d)
        preset = values.pop("preset", CUSTOM_PRESET)
        if preset == CUSTOM_PRESET:
            return cls(**values)
        return cls.from_preset(preset, **values)

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values; ``from_dict(to_dict())`` gives an equal config."""
        return {spec.name: value for spec, value in self.items()}

    def replace(self, **changes: Any) -> TrackerConfig:
        """A validated copy with ``changes`` applied (unknown names raise ValueError)."""
        _reject_unknown(changes)
        return dataclasses.replace(self, **changes)

    def search_size_for(self, target_area: float, image_area: float) -> int:
        """TracKit's small-target rule: big_sz if target/image area < small_target_area, else small_sz."""
        return self.big_sz if target_area / image_area < self.small_target_area else self.small_sz


def _reject_unknown(keys: Mapping[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(TrackerConfig)}
    unknown = sorted(str(k) for k in keys if k not in known)
    if unknown:
        raise ValueError(
            f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )


def check_value(spec: ParamSpec, value: Any) -> Any:
    """Type- and range-check one value against its spec (ValueError naming the field and the reason).

    Ints are accepted for float fields and returned as float; bools are never taken for numbers.
    """
    name = spec.name
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    elif spec.type is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, spec.choices))}")
    if spec.range is not None:
        low, high = spec.range
        if not low <= value <= high:
            raise ValueError(f"{name}={value!r} is outside the allowed range [{low}, {high}]")
    return value
