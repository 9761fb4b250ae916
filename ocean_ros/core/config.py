"""The single schema of every tracker tunable, its validation and the published TracKit presets.

Each field of :class:`TrackerConfig` carries metadata (description with units, allowed range or choices,
whether it may change while a target is tracked, whether the per-frame step holds it in its parameter buffer).
The online classifier's tunables are a nested group, :class:`OnlineParams` (``TrackerConfig.online_params``),
whose flat names are ``online.<field>``. The ROS parameter layer, the YAML files, the README table and the step's
parameter buffer (:data:`StepParams`) are derived from :meth:`TrackerConfig.parameters`; nothing else defines
tunables, so adding one is one field here.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .schema import ParamSpec, check_fields, check_value, group_field, param_field, schema_of

__all__ = [
    "BLUR_SIGMAS",
    "CUSTOM_PRESET",
    "PRESETS",
    "RELATIVE_SHIFTS",
    "ROTATIONS",
    "OnlineParams",
    "ParamSpec",
    "StepParams",
    "TrackerConfig",
    "check_value",
    "group_field",
    "param_field",
    "preset_names",
    "schema_of",
    "step_params",
]

CUSTOM_PRESET = "custom"
CROP_BACKENDS = ("auto", "opencv", "torch")
NETWORK_BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
SEARCH_SIDES = (135, 639)  # allowed search crop sides (px)
UNIT = (0.0, 1.0)  # the range of weights, rates and scores that are fractions


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
    # Re-detection while LOST (not in TracKit, so off in its presets): 0.616 with it (model card).
    "LITE": dict(
        total_stride=16, penalty_k=0.16, lr=0.15, window_influence=0.35, small_sz=287, big_sz=255,
        context_amount=0.45, align=False, align_ratio=1.0,
        online=True, online_ratio=0.5, lost_threshold=0.42, redetect=True,
        **{"online.update_interval": 10, "online.search_area_scale": 3.0},
    ),
}


def preset_names() -> tuple[str, ...]:
    """Names accepted by :meth:`TrackerConfig.from_preset`."""
    return tuple(PRESETS)


# The initial augmentation of TracKit's ONLINE.yaml (fixed lists, not tunables): relative shifts (dy, dx) in half
# sample sides, blur sigmas (vertical, horizontal) in pixels, rotations in degrees.
RELATIVE_SHIFTS = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (-0.6, -0.6))
BLUR_SIGMAS = ((2.0, 0.2), (0.2, 2.0), (3.0, 1.0), (1.0, 3.0), (2.0, 2.0))
ROTATIONS = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)


@dataclass(frozen=True)
class OnlineParams:
    """The online classifier's tunables (TracKit's experiments/test/VOT/ONLINE.yaml; used only when
    ``TrackerConfig.online`` is set). Nested in :class:`TrackerConfig` as ``online_params``; outside Python (ROS
    parameters, YAML, ``from_dict``) each is named ``online.<field>``."""

    PREFIX: ClassVar[str] = "online"

    search_area_scale: float = param_field(
        4.0, "side of the online sample region in target sides, sqrt(search_area) = scale*sqrt(w*h) (ratio)",
        range=(1.0, 10.0),
    )
    init_iterations: int = param_field(
        25, "optimiser steps that train the online filter on the first frame (steps)", range=(0, 200),
    )
    update_iterations: int = param_field(
        3, "optimiser steps at each scheduled online update (steps)", range=(0, 50), runtime_safe=True,
    )
    hard_negative_iterations: int = param_field(
        3, "optimiser steps on a hard-negative frame (steps)", range=(0, 50), runtime_safe=True,
    )
    update_interval: int = param_field(
        10, "scheduled online update every this many frames (frames; TracKit's train_skipping)",
        range=(1, 1000), runtime_safe=True,
    )
    memory_size: int = param_field(
        250, "online training memory (samples); must exceed the initial samples", range=(2, 5000),
    )
    learning_rate: float = param_field(
        0.0075, "memory weight learning rate of a normal frame (unitless)", range=UNIT, runtime_safe=True,
    )
    hard_negative_learning_rate: float = param_field(
        0.02, "memory weight learning rate of a hard-negative frame (unitless)", range=UNIT,
        runtime_safe=True,
    )
    augmentation: bool = param_field(
        True, "augment the first frame (4 shifts, flip, 5 blurs, 12 rotations, dropout copies) for the online "
        "filter; otherwise it trains on the identity sample alone",
    )
    dropout_copies: int = param_field(
        7, "channel-dropout copies of the identity sample's features at initialisation (samples)", range=(0, 64),
    )
    dropout_prob: float = param_field(
        0.2, "channel-dropout probability of those copies (probability)", range=(0.0, 0.9),
    )
    random_shift_factor: float = param_field(
        1.0 / 3.0, "random shift of the flip/blur/rotation samples, uniform in ±factor*224/2 (fraction of side)",
        range=UNIT,
    )
    seed: int = param_field(
        1234, "seed of the initial augmentation's random shifts and dropout masks (integer)",
        range=(0, 2**31 - 1),
    )
    not_found_threshold: float = param_field(
        0.0, "online peak score below which the frame is flagged not_found (raw score)", range=(-100.0, 100.0),
        runtime_safe=True,
    )
    distractor_threshold: float = param_field(
        100.0, "second/first peak ratio above which the distance test decides (ratio)", range=(0.0, 1000.0),
        runtime_safe=True,
    )
    hard_negative_threshold: float = param_field(
        0.45, "second/first peak ratio above which the frame is flagged hard_negative (ratio)",
        range=(0.0, 10.0), runtime_safe=True,
    )
    neighborhood_scale: float = param_field(
        2.2, "side of the target neighbourhood masked before the second peak, in target sizes (ratio)",
        range=(0.0, 20.0), runtime_safe=True,
    )
    displacement_scale: float = param_field(
        0.7, "radius of the distractor distance test: scale*sqrt(H*W)/2 score cells (ratio)",
        range=(0.0, 10.0), runtime_safe=True,
    )

    def __post_init__(self) -> None:
        check_fields(self, self.parameters())
        if self.memory_size <= self.num_initial_samples:
            raise ValueError(
                f"{self.PREFIX}.memory_size={self.memory_size} must exceed the {self.num_initial_samples} initial "
                "online samples"
            )

    @classmethod
    def parameters(cls) -> tuple[ParamSpec, ...]:
        """Every online tunable with its metadata, named ``online.<field>``."""
        return schema_of(cls, f"{cls.PREFIX}.")

    @property
    def num_initial_samples(self) -> int:
        """Training samples made at initialisation: identity (+ 22 transforms + dropout copies if augmenting)."""
        if not self.augmentation:
            return 1
        return 1 + len(RELATIVE_SHIFTS) + 1 + len(BLUR_SIGMAS) + len(ROTATIONS) + self.dropout_copies


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
        range=UNIT, runtime_safe=True, step=True,
    )
    window_influence: float = param_field(
        0.38, "weight of the cosine window blended into the penalised score (unitless)",
        range=UNIT, runtime_safe=True, step=True,
    )
    lr: float = param_field(
        0.765, "size learning rate; the effective size update rate is (penalty*score*lr)^2 (unitless)",
        range=UNIT, runtime_safe=True, step=True,
    )
    small_sz: int = param_field(
        255, "search crop side for normal targets (px, (side - exemplar_size) divisible by total_stride)",
        range=SEARCH_SIDES,
    )
    big_sz: int = param_field(
        271, "search crop side for small targets (px, (side - exemplar_size) divisible by total_stride)",
        range=SEARCH_SIDES,
    )
    small_target_area: float = param_field(
        0.004, "target area / image area below which big_sz is used; decided at each initialize (ratio)",
        range=UNIT, runtime_safe=True,
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
        range=UNIT, runtime_safe=True, step=True,
    )
    online: bool = param_field(
        False, "use the online classifier and fuse its score map (not combinable with align)"
    )
    online_ratio: float = param_field(
        0.7, "weight of the online map in ratio*online + (1-ratio)*siamese (unitless)",
        range=UNIT, runtime_safe=True, step=True,
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
        range=UNIT, runtime_safe=True,
    )
    lost_frames: int = param_field(
        5, "consecutive low-score frames after which the state becomes LOST (frames)",
        range=(1, 10000), runtime_safe=True,
    )
    found_threshold: float = param_field(
        0.6, "score a LOST target needs again (local step, or a re-detection probe) to count as found; at least "
        "lost_threshold (0..1)", range=UNIT, runtime_safe=True,
    )
    found_frames: int = param_field(
        2, "consecutive confident frames (or agreeing re-detection probes) that end a loss (frames)",
        range=(1, 10000), runtime_safe=True,
    )
    found_online_score: float = param_field(
        0.38, "with the online branch on: its raw filter response a LOST target needs at the new box before the loss "
        "ends (cross-validated: held-out, 90 % of target boxes reach it, 2 % of background)",
        range=(-100.0, 100.0), runtime_safe=True,
    )
    redetect: bool = param_field(
        False, "while LOST, also scan the frame for the target at its scale (one extra network pass per frame, "
        "window off) and jump to a re-detection that agreeing probes confirm (and the online filter prefers); "
        "not in TracKit: off in its presets, on in LITE",
        runtime_safe=True,
    )
    online_params: OnlineParams = group_field(OnlineParams)

    def __post_init__(self) -> None:
        check_fields(self, [spec for spec in schema_of(type(self)) if spec.type is not OnlineParams])
        if not isinstance(self.online_params, OnlineParams):
            raise ValueError(f"online_params must be an OnlineParams, got {type(self.online_params).__name__}")
        if self.found_threshold < self.lost_threshold:
            raise ValueError(f"found_threshold={self.found_threshold} is below lost_threshold={self.lost_threshold}: "
                             "a loss could end on a score that counts as low")
        for name in ("small_sz", "big_sz"):
            size = getattr(self, name)
            if (size - self.exemplar_size) % self.total_stride:
                raise ValueError(
                    f"{name}={size}: (size - exemplar_size {self.exemplar_size}) must be divisible by "
                    f"total_stride {self.total_stride}"
                )
        if self.align and self.online:
            raise ValueError(
                "align and online are exclusive: TracKit never fuses the object-aware head online"
            )

    # --- schema: flat names (``online.<field>`` for the nested online tunables) --------------------------
    @classmethod
    def parameters(cls) -> tuple[ParamSpec, ...]:
        """Every tunable with its metadata under its flat name, in declaration order (the online group last)."""
        specs: list[ParamSpec] = []
        for spec in schema_of(cls):
            specs.extend(OnlineParams.parameters() if spec.type is OnlineParams else (spec,))
        return tuple(specs)

    @classmethod
    def runtime_safe_names(cls) -> frozenset[str]:
        """Flat names of the tunables that may change while a target is tracked."""
        return frozenset(s.name for s in cls.parameters() if s.runtime_safe)

    @classmethod
    def step_names(cls) -> tuple[str, ...]:
        """Names of the tunables held in the per-frame step's parameter buffer, in buffer order."""
        return tuple(s.name for s in cls.parameters() if s.step)

    def value(self, name: str) -> Any:
        """The value of the tunable with flat name ``name`` (``online.<field>`` reads ``online_params``)."""
        group, _, field_name = name.rpartition(".")
        if group == OnlineParams.PREFIX:
            return getattr(self.online_params, field_name)
        return getattr(self, name)

    def items(self) -> Iterator[tuple[ParamSpec, Any]]:
        """(metadata, current value) for every tunable, by flat name."""
        for spec in self.parameters():
            yield spec, self.value(spec.name)

    # --- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrackerConfig:
        """The published preset ``name`` (spec §5.8), with optional overrides by flat name."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
        if "preset" in overrides:
            raise ValueError(
                "'preset' cannot be overridden in from_preset; pass the name as the first argument"
            )
        return cls(preset=name).replace(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackerConfig:
        """Build from a mapping of flat names; a ``preset`` key supplies the starting values, the other keys
        override them. Unknown keys and out-of-range values raise ValueError naming them.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a mapping of config values, got {type(d).__name__}")
        values = dict(d)
        preset = values.pop("preset", CUSTOM_PRESET)
        if preset == CUSTOM_PRESET:
            return cls().replace(**values)
        return cls.from_preset(preset, **values)

    def to_dict(self) -> dict[str, Any]:
        """All tunables by flat name as plain Python values; ``from_dict(to_dict())`` gives an equal config."""
        return {spec.name: value for spec, value in self.items()}

    def replace(self, **changes: Any) -> TrackerConfig:
        """A validated copy with ``changes`` (flat names) applied; unknown names raise ValueError."""
        _reject_unknown(changes)
        prefix = f"{OnlineParams.PREFIX}."
        online = {k.removeprefix(prefix): v for k, v in changes.items() if k.startswith(prefix)}
        top = {k: v for k, v in changes.items() if not k.startswith(prefix)}
        if online:
            top["online_params"] = dataclasses.replace(self.online_params, **online)
        return dataclasses.replace(self, **top)

    def search_size_for(self, target_area: float, image_area: float) -> int:
        """TracKit's small-target rule: big_sz if target/image area < small_target_area, else small_sz."""
        return self.big_sz if target_area / image_area < self.small_target_area else self.small_sz


# The step's run-time tunables by name, in the order of its parameter buffer (floats on the host, 0-dim device
# tensors inside the step); derived from the schema's ``step`` flags.
StepParams = namedtuple(  # type: ignore[misc]
    "StepParams", TrackerConfig.step_names(),
    defaults=[spec.default for spec in TrackerConfig.parameters() if spec.step],
)


def step_params(config: TrackerConfig) -> StepParams:
    """The step tunables of ``config`` as host floats."""
    return StepParams(*(float(config.value(name)) for name in StepParams._fields))


def _reject_unknown(keys: Mapping[str, Any]) -> None:
    known = {spec.name for spec in TrackerConfig.parameters()}
    unknown = sorted(str(k) for k in keys if k not in known)
    if unknown:
        raise ValueError(
            f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
