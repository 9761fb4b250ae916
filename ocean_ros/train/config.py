"""The one schema of a training run (``ocean-train CONFIG.yaml``): data, sampling, augmentation, model, optimiser.

Every key has a default here; a YAML file overrides them section by section. Unknown keys are errors that
name the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError", "DataConfig", "DistillConfig", "ModelConfig", "OnlineStageConfig", "OptimConfig", "TrainConfig",
    "load_train_config",
]


class ConfigError(ValueError):
    """A training configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataSource:
    """One training source: a folder and how to read it."""

    path: str  # folder; relative paths are taken relative to the data root (OCEAN_ROS_DATA)
    kind: str = "crop_pack"  # crop_pack | sequences (any ocean-eval layout: GOT-10k, LaSOT, OTB, ...) | coco
    weight: float = 1.0  # share of the pairs drawn from this source (normalised over sources)
    frame_range: int = 100  # template/search frames at most this many frames apart (original frame numbers)
    exclude: tuple[str, ...] = ()  # folder / sequence names left out
    annotations: str = ""  # coco only: the instances json, relative to path


@dataclass(frozen=True)
class DataConfig:
    """Where pairs come from and how many an epoch has."""

    sources: tuple[DataSource, ...] = (DataSource("train"),)
    pairs_per_epoch: int = 20000
    negative_share: float = 0.2  # share of pairs whose search crop comes from another video
    distractor_share: float = 0.0  # of those negatives, share showing another object of the template's kind
    workers: int = 0  # DataLoader worker processes (0: in the training process)


@dataclass(frozen=True)
class AugmentConfig:
    """Per-pair augmentation (uniform ranges; probabilities per pair)."""

    template_shift: float = 4.0  # px, each axis
    template_scale: float = 0.05  # relative, each axis
    search_shift: float = 64.0
    search_scale: float = 0.18
    blur: float = 0.2  # probability of a Gaussian blur of the search crop
    colour: float = 1.0  # probability of brightness/contrast/saturation jitter
    colour_strength: float = 0.2  # jitter range (relative)
    grey: float = 0.05  # probability of turning both crops grey
    flip: float = 0.5  # probability of a horizontal flip of both crops


@dataclass(frozen=True)
class ModelConfig:
    """The network trained (Ocean-Lite; see ``ocean_ros.core.model.lite.LiteNetConfig``) and its labels."""

    stride: int = 16
    channels: int = 64
    tower_depth: int = 2
    align: bool = True
    search_size: int = 255
    pretrained: str = "pretrained/nanotrackv3.pth"  # NanoTrack v3 checkpoint; only backbone.* is used
    label_radius: int = 1  # positive cells: L1 distance (cells) to the cell nearest the true box centre
    init: str = ""  # start from this ocean_ros checkpoint's Siamese weights (repo-relative; "" = from `pretrained`)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation from NanoTrack v3's trained BAN head (with its own pretrained trunk), a frozen teacher
    (training-spec §6): its score and box maps, sampled onto the student's grid, are soft targets beside the
    ground-truth losses. total = gt_weight·(L_cls + L_reg + L_align) + cls_weight·KL + box_weight·L_box."""

    teacher: str = ""  # NanoTrack v3 checkpoint (relative to the data root); "" = no distillation
    cls_weight: float = 1.0  # Bernoulli KL(teacher score ‖ sigmoid(student logit)), mean over cells
    box_weight: float = 1.0  # IoU loss student vs teacher box, weighted by the teacher's score
    gt_weight: float = 1.0  # weight of the ground-truth losses


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule."""

    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01  # head learning rate after warm-up
    trunk_lr_factor: float = 0.1  # trunk lr = factor × head lr once unfrozen
    final_lr_factor: float = 0.02  # cosine decay to this fraction of lr at the last epoch
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    epochs: int = 10
    unfreeze_epoch: int = 3  # trunk frozen before this epoch (0: never frozen; >= epochs: always frozen)
    batch_size: int = 32  # global batch (split across DDP processes)
    grad_clip: float = 10.0
    amp: bool = True  # autocast on CUDA (ignored on CPU)
    max_loss: float = 1e4  # steps with a non-finite or larger loss are skipped


@dataclass(frozen=True)
class ValidationConfig:
    """Tracking validation with the real OceanTracker."""

    every: int = 1  # epochs (0: never)
    path: str = "sequences"  # relative to the data root
    sequences: tuple[str, ...] = ()  # empty: all
    max_frames: int = 0  # per sequence (0: all)
    preset: str = "LITE"


@dataclass(frozen=True)
class OnlineStageConfig:
    """The second stage (``stage: online``): episodic training of the online classifier, Siamese part frozen.

    Each episode takes ``train_frames`` + ``test_frames`` frames of one video (original frame numbers within
    ``frame_range``; the earliest ones train), cuts ``sample_size`` samples of side search_area_scale·sqrt(w·h)
    around the target (centre shifted by up to ±jitter/2 target sides, side scaled by exp(±scale_jitter)),
    builds the filter on the train samples (initialiser + ``iterations`` optimiser steps, unrolled) and scores
    it on the test samples against a Gaussian label (σ = label_sigma·sqrt(w·h), hinge below 0.05).
    """

    base: str = "ocean_ros/models/ocean_lite.pth"  # stage-1 model (Siamese weights kept as they are); repo-relative
    feature_dim: int = 64  # online classification feature width
    layer: int = 9  # trunk stage the projection reads (4..9)
    episodes_per_epoch: int = 2000
    train_frames: int = 3
    test_frames: int = 3
    frame_range: int = 60
    iterations: int = 5  # unrolled optimiser steps per episode
    sample_size: int = 224
    search_area_scale: float = 4.0
    train_jitter: float = 0.5  # centre shift range in target sides (train samples)
    test_jitter: float = 2.0  # (test samples)
    train_scale_jitter: float = 0.1  # log-scale range of the sample side
    test_scale_jitter: float = 0.2
    label_sigma: float = 0.25  # Gaussian label σ in target sides (sqrt(w·h))
    init_loss_weight: float = 0.5  # weight of the initial filter's test loss
    iter_loss_weight: float = 0.5  # weight of the intermediate filters' mean test loss
    learn_projection: bool = True  # False: fixed random projection (ablation)
    learn_optimizer: bool = True  # False: step length / regularisation / label predictors stay at their init
    online_ratio: float = 0.5  # fusion weight used by the training-time validation


@dataclass(frozen=True)
class TrainConfig:
    """A whole run."""

    name: str = "ocean_lite"
    stage: str = "siamese"  # siamese (first stage) | online (episodic online classifier, OnlineStageConfig)
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: torch's default)
    output: str = "runs/ocean_lite"
    log_every: int = 20  # iterations between log rows
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    online: OnlineStageConfig = field(default_factory=OnlineStageConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-able)."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **sections: Any) -> TrainConfig:
        """A copy with whole sections or top-level values replaced."""
        return dataclasses.replace(self, **sections)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    absent = [n for n in required if n not in values]
    if absent:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(absent)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        f = fields[name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ""  # required fields are strings (paths)
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, key)
        elif name == "sources":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key}: expected a non-empty list of sources")
            kwargs[name] = tuple(_build(DataSource, v, f"{key}[{i}]") for i, v in enumerate(value))
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = _check_scalar(default, value, key)
    return cls(**kwargs)


def _check_scalar(default: Any, value: Any, key: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{key}: expected {type(default).__name__}, got {value!r}")
    return value


def config_from_dict(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested mapping (unknown keys are errors)."""
    cfg = _build(TrainConfig, values, where)
    _validate(cfg, where)
    return cfg


def _validate(cfg: TrainConfig, where: str) -> None:
    checks = [
        (cfg.data.pairs_per_epoch > 0, "data.pairs_per_epoch must be positive"),
        (0.0 <= cfg.data.negative_share < 1.0, "data.negative_share must be in [0, 1)"),
        (0.0 <= cfg.data.distractor_share <= 1.0, "data.distractor_share must be in [0, 1]"),
        (min(cfg.distill.cls_weight, cfg.distill.box_weight, cfg.distill.gt_weight) >= 0,
         "distill weights must be >= 0"),
        (cfg.optim.batch_size > 0, "optim.batch_size must be positive"),
        (cfg.optim.epochs > 0, "optim.epochs must be positive"),
        (cfg.optim.optimizer in ("sgd", "adamw"), "optim.optimizer must be 'sgd' or 'adamw'"),
        (cfg.model.stride in (8, 16), "model.stride must be 8 or 16"),
        ((cfg.model.search_size - 127) % cfg.model.stride == 0,
         "model.search_size - 127 must be divisible by model.stride"),
        (cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        (cfg.stage in ("siamese", "online"), "stage must be 'siamese' or 'online'"),
        (cfg.online.train_frames > 0 and cfg.online.test_frames > 0,
         "online.train_frames and online.test_frames must be positive"),
        (cfg.online.iterations >= 0, "online.iterations must be >= 0"),
        (cfg.online.episodes_per_epoch > 0, "online.episodes_per_epoch must be positive"),
        (cfg.online.sample_size % 16 == 0, "online.sample_size must be a multiple of 16"),
    ]
    checks += [(s.kind in ("crop_pack", "sequences", "coco"), f"data.sources[{i}].kind must be crop_pack, "
                "sequences or coco") for i, s in enumerate(cfg.data.sources)]
    checks += [(s.weight > 0, f"data.sources[{i}].weight must be positive") for i, s in enumerate(cfg.data.sources)]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML file; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return config_from_dict(values, str(path))
