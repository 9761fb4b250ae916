"""TrackerConfig: schema metadata, presets (spec §5.8), validation and round trips."""

from __future__ import annotations

import dataclasses

import pytest

from ocean_ros.core.config import PRESETS, OnlineParams, ParamSpec, StepParams, TrackerConfig, preset_names, step_params

REQUIRED_FIELDS = {
    "preset", "penalty_k", "window_influence", "lr", "small_sz", "big_sz", "small_target_area",
    "exemplar_size", "total_stride", "context_amount", "align", "align_ratio", "online", "online_ratio",
    "crop_backend", "half", "cuda_graphs", "lost_threshold", "lost_frames",
}


def test_schema_has_every_tunable_with_metadata():
    specs = TrackerConfig.parameters()
    assert {s.name for s in specs} >= REQUIRED_FIELDS
    for spec in specs:
        assert isinstance(spec, ParamSpec)
        assert spec.description
        assert spec.type in (bool, int, float, str)
        assert isinstance(spec.runtime_safe, bool)
        if spec.type in (int, float) and spec.choices is None:
            assert spec.range is not None, spec.name
    by_name = {s.name: s for s in specs}
    assert by_name["crop_backend"].choices == ("auto", "opencv", "torch")
    assert by_name["lr"].runtime_safe and not by_name["small_sz"].runtime_safe
    assert TrackerConfig.runtime_safe_names() >= {"penalty_k", "window_influence", "lr", "lost_threshold"}


def test_defaults_are_trackit_oceanconfig():
    c = TrackerConfig()
    assert (c.penalty_k, c.window_influence, c.lr) == (0.062, 0.38, 0.765)
    assert (c.exemplar_size, c.total_stride, c.context_amount, c.small_target_area) == (127, 8, 0.5, 0.004)
    assert c.align is False and c.online is False and c.preset == "custom"


@pytest.mark.parametrize(
    "name, values",
    [
        ("OTB2015", (0.087, 0.408, 0.366, 271, 271, False, False)),
        ("VOT2018", (0.021, 0.730, 0.321, 255, 271, True, False)),
        ("VOT2019", (0.062, 0.765, 0.380, 255, 271, True, False)),
        ("GOT10K", (0.022, 0.799, 0.118, 255, 255, False, False)),
        ("LASOT", (0.11, 0.7, 0.20, 255, 255, False, False)),
        ("VOT2018ON", (0.187, 0.800, 0.640, 271, 287, False, True)),
        ("VOT2019ON", (0.06, 0.644, 0.484, 255, 287, False, True)),
    ],
)
def test_presets_match_spec(name, values):
    c = TrackerConfig.from_preset(name)
    assert (c.penalty_k, c.lr, c.window_influence, c.small_sz, c.big_sz, c.align, c.online) == values
    assert c.preset == name


def test_preset_ratios():
    assert TrackerConfig.from_preset("VOT2018").align_ratio == 0.93
    assert TrackerConfig.from_preset("VOT2019").align_ratio == 0.94
    assert TrackerConfig.from_preset("VOT2018ON").online_ratio == 0.5
    assert TrackerConfig.from_preset("VOT2019ON").online_ratio == 0.7
    assert set(preset_names()) == set(PRESETS) >= {"OTB2015", "VOT2018", "VOT2019", "GOT10K", "LASOT"}


def test_from_preset_overrides_and_unknown_preset():
    c = TrackerConfig.from_preset("LASOT", crop_backend="opencv", lr=0.5)
    assert (c.crop_backend, c.lr, c.penalty_k) == ("opencv", 0.5, 0.11)
    with pytest.raises(ValueError, match="unknown preset 'NOPE'"):
        TrackerConfig.from_preset("NOPE")
    with pytest.raises(ValueError, match="bogus"):
        TrackerConfig.from_preset("LASOT", bogus=1)


@pytest.mark.parametrize("name", [*PRESETS, None])
def test_dict_round_trip(name):
    c = TrackerConfig() if name is None else TrackerConfig.from_preset(name, lost_frames=7)
    d = c.to_dict()
    assert set(d) == {spec.name for spec in TrackerConfig.parameters()}
    assert TrackerConfig.from_dict(d) == c


def test_from_dict_starts_from_preset():
    c = TrackerConfig.from_dict({"preset": "VOT2019", "lr": 0.6})
    assert c.preset == "VOT2019" and c.lr == 0.6 and c.align and c.penalty_k == 0.062
    assert TrackerConfig.from_dict({}) == TrackerConfig()


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"unknown config key\(s\): bar, foo"):
        TrackerConfig.from_dict({"lr": 0.5, "foo": 1, "bar": 2})
    with pytest.raises(ValueError, match="mapping"):
        TrackerConfig.from_dict([("lr", 0.5)])


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("lr", 1.5, "outside the allowed range"),
        ("penalty_k", -0.1, "outside the allowed range"),
        ("window_influence", float("nan"), "finite"),
        ("lost_threshold", "high", "must be a number"),
        ("lost_frames", 0, "outside the allowed range"),
        ("lost_frames", 2.5, "must be an int"),
        ("crop_backend", "cuda", "not one of"),
        ("exemplar_size", 128, "not one of"),
        ("total_stride", 4, "not one of"),
        ("small_sz", 260, "divisible by total_stride"),
        ("big_sz", 100, "outside the allowed range"),
        ("align", 1, "must be a bool"),
        ("half", "yes", "must be a bool"),
        ("preset", "VOT2077", "not one of"),
    ],
)
def test_validation_errors_name_the_reason(key, value, reason):
    with pytest.raises(ValueError, match=key) as info:
        TrackerConfig(**{key: value})
    assert reason in str(info.value)


def test_int_accepted_for_float_fields_and_bool_not_for_int():
    assert TrackerConfig(lr=1).lr == 1.0 and isinstance(TrackerConfig(lr=1).lr, float)
    with pytest.raises(ValueError):
        TrackerConfig(small_sz=True)


def test_align_and_online_are_exclusive():
    with pytest.raises(ValueError, match="exclusive"):
        TrackerConfig.from_preset("VOT2019ON", align=True)


def test_replace_validates_and_config_is_immutable():
    c = TrackerConfig()
    assert c.replace(lr=0.3).lr == 0.3
    with pytest.raises(ValueError):
        c.replace(lr=3.0)
    with pytest.raises(ValueError, match="nope"):
        c.replace(nope=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 0.1  # type: ignore[misc]


def test_items_pairs_metadata_with_values():
    c = TrackerConfig.from_preset("GOT10K")
    values = {spec.name: value for spec, value in c.items()}
    assert values == c.to_dict()


def test_online_tunables_are_nested_and_named_online_dot_field():
    names = [spec.name for spec in TrackerConfig.parameters()]
    online = [spec.name for spec in OnlineParams.parameters()]
    assert online == [f"online.{f.name}" for f in dataclasses.fields(OnlineParams)]
    assert names[-len(online):] == online and "online_params" not in names
    c = TrackerConfig.from_dict({"preset": "LITE", "online.memory_size": 100})
    assert c.online_params.memory_size == 100 and c.online_params.search_area_scale == 3.0  # the preset's
    assert c.value("online.memory_size") == 100 and c.to_dict()["online.memory_size"] == 100
    assert TrackerConfig.runtime_safe_names() >= {"online.learning_rate", "online.update_interval"}
    with pytest.raises(ValueError, match=r"unknown config key\(s\): online.nope"):
        c.replace(**{"online.nope": 1})
    with pytest.raises(ValueError, match="online.dropout_prob"):
        c.replace(**{"online.dropout_prob": 2.0})
    with pytest.raises(ValueError, match=r"online.memory_size=30 must exceed the 30"):
        TrackerConfig(online_params=OnlineParams(memory_size=30))


def test_step_params_follow_the_schema():
    assert StepParams._fields == TrackerConfig.step_names()
    assert set(StepParams._fields) <= TrackerConfig.runtime_safe_names()
    c = TrackerConfig.from_preset("VOT2019", lr=0.5)
    assert step_params(c) == StepParams(c.penalty_k, c.window_influence, 0.5, c.align_ratio, c.online_ratio)


def test_small_target_rule():
    c = TrackerConfig.from_preset("VOT2018")
    assert c.search_size_for(0.0039 * 1000, 1000) == 271
    assert c.search_size_for(0.004 * 1000, 1000) == 255
