"""Training data: pair sampling, crops whose boxes follow the pixels, the pair dataset, and bad-input messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_synth import centred_box, marker_side, scene, target_extent, write_pack

from ocean_ros.train import cli
from ocean_ros.train.config import AugmentConfig, ConfigError, load_train_config
from ocean_ros.train.datasets import DataError, TrainSequence, read_box_csv, read_crop_pack
from ocean_ros.train.pairs import PairSampler, crop_jittered, load_image, pair_rng
from ocean_ros.train.samples import GridSpec, PairDataset

GRID16 = GridSpec(search_size=255, score_size=11, origin=47.0, stride=16, radius=1)
NO_AUGMENT = dict(template_shift=0.0, template_scale=0.0, search_shift=0.0, search_scale=0.0, blur=0.0, colour=0.0,
                  grey=0.0, flip=0.0)


# --- sampler --------------------------------------------------------------------------------------------------------
def video(name: str, frame_ids: list[int]) -> TrainSequence:
    n = len(frame_ids)
    return TrainSequence(name, tuple(Path(f"/nowhere/{name}/{i:06d}.jpg") for i in range(n)),
                         np.tile([10.0, 10.0, 20.0, 20.0], (n, 1)), np.asarray(frame_ids, dtype=np.int64))


def static(name: str) -> TrainSequence:
    return TrainSequence(name, (Path(f"/nowhere/{name}.jpg"),), np.array([[5.0, 5.0, 9.0, 9.0]]), np.array([0]), True)


def make_sampler(seed: int = 7, negative_share: float = 0.25) -> PairSampler:
    videos = [
        video("a", list(range(0, 60, 3))),  # 20 frames, 3 apart
        video("b", [0, 1, 2, 50, 51, 52, 200]),  # clusters farther apart than the range
        video("c", list(range(100, 130))),
    ]
    statics = [static(f"s{k}") for k in range(4)]
    return PairSampler([videos, statics], weights=[3.0, 1.0], frame_ranges=[10, 0], negative_share=negative_share,
                       seed=seed)


def test_sampler_pairs_videos_only_as_negatives():
    sampler = make_sampler()
    source_of = {**{k: 0 for k in range(3)}, **{k: 1 for k in range(3, 7)}}
    counts = {"neg": 0, "pos": 0, "static": 0}
    distances = []
    n = 4000
    for index in range(n):
        pair = sampler.pair(epoch=2, index=index)
        (ts, tf), (ss, sf) = pair.template, pair.search
        t_seq, s_seq = sampler.sequences[ts], sampler.sequences[ss]
        assert 0 <= tf < len(t_seq) and 0 <= sf < len(s_seq)
        if pair.negative:
            assert ss != ts, pair
            counts["neg"] += 1
            continue
        assert ss == ts, f"positive pair across two sequences: {pair}"
        distance = abs(int(t_seq.frame_ids[tf]) - int(t_seq.frame_ids[sf]))
        frame_range = [10, 0][source_of[ts]]
        assert distance <= frame_range, (pair, distance)
        if t_seq.static:
            counts["static"] += 1
        else:
            counts["pos"] += 1
            distances.append(distance)
    assert counts["neg"] / n == pytest.approx(0.25, abs=0.03)
    # source weights 3:1 among the first draws (negatives are drawn from either source's template)
    assert counts["static"] / (counts["pos"] + counts["static"]) == pytest.approx(0.25, abs=0.03)
    # the whole range is used: 0 (same frame), up to 9 (a: 3 frames apart) and 10 (c)
    assert min(distances) == 0 and max(distances) == 10 and 9 in distances


def test_sampler_without_negatives_or_with_one_video():
    sampler = make_sampler(negative_share=0.0)
    assert not any(sampler.pair(0, i).negative for i in range(500))
    single = PairSampler([[video("only", list(range(20)))]], [1.0], [5], negative_share=0.9, seed=1)
    for i in range(500):
        pair = single.pair(0, i)
        assert not pair.negative and pair.template[0] == pair.search[0] == 0
        assert abs(pair.template[1] - pair.search[1]) <= 5


def test_sampler_is_deterministic_per_seed_epoch_index():
    a, b = make_sampler(seed=7), make_sampler(seed=7)
    keys = [(e, i) for e in range(3) for i in range(200)]
    first = {k: a.pair(*k) for k in keys}
    # another instance, another order: the same pairs
    for k in reversed(keys):
        assert b.pair(*k) == first[k]
    assert a.pair(1, 5) == first[(1, 5)]
    other_epoch = sum(first[(0, i)] != first[(1, i)] for i in range(200))
    other_seed = sum(make_sampler(seed=8).pair(0, i) != first[(0, i)] for i in range(200))
    assert other_epoch > 150 and other_seed > 150
    # the augmentation stream is separate and deterministic too
    assert pair_rng(1, 2, 3, 1).random() == pair_rng(1, 2, 3, 1).random() != pair_rng(1, 2, 3, 0).random()


def test_sampler_needs_sequences():
    with pytest.raises(ValueError, match="at least one sequence"):
        PairSampler([[video("a", [0, 1])], []], [1.0, 1.0], [5, 0], 0.1, 1)


# --- crops ----------------------------------------------------------------------------------------------------------
def assert_box_matches(crop: np.ndarray, box: np.ndarray, tol: float, what: str) -> None:
    extent = target_extent(crop)
    assert extent is not None, f"{what}: no target pixel in the crop"
    err = np.abs(np.asarray(extent) - box)
    # compare sides: x1, y1, x2, y2
    sides = np.abs(np.array([extent[0], extent[1], extent[0] + extent[2], extent[1] + extent[3]])
                   - np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]]))
    assert sides.max() <= tol, f"{what}: pixels at {extent}, box {box.round(2).tolist()} (side errors {sides})"
    assert err.max() <= 2 * tol


@pytest.mark.parametrize("image_hw,box,out_size,shift,scale", [
    ((300, 400), (170, 120, 60, 40), 255, 64.0, 0.18),  # search crop, upsampled ~1.3x
    ((300, 400), (170, 120, 60, 40), 127, 4.0, 0.05),  # template crop
    ((120, 160), (70, 50, 12, 10), 255, 64.0, 0.18),  # small target, upsampled ~6x, window beyond the image
    ((600, 800), (300, 220, 200, 150), 255, 64.0, 0.18),  # large target, downsampled ~2.7x
    ((381, 381), (120, 160, 141, 60), 255, 32.0, 0.3),  # elongated target
])
def test_crop_jittered_box_follows_the_pixels(image_hw, box, out_size, shift, scale):
    image = scene(*image_hw, box, seed=sum(box))
    for seed in range(12):
        crop, out_box = crop_jittered(image, np.asarray(box, dtype=np.float64), out_size, shift, scale,
                                      np.random.default_rng(seed))
        assert crop.shape == (out_size, out_size, 3) and crop.dtype == np.uint8
        assert_box_matches(crop, out_box, 1.0, f"seed {seed}")


def test_crop_without_jitter_centres_the_box_at_template_scale():
    box = (170, 120, 60, 40)
    image = scene(300, 400, box, seed=1)
    crop, out_box = crop_jittered(image, np.asarray(box, dtype=np.float64), 127, 0.0, 0.0, np.random.default_rng(0))
    s_z = np.sqrt((60 + 50) * (40 + 50))
    np.testing.assert_allclose(out_box, [63.5 - 30 * 127 / s_z, 63.5 - 20 * 127 / s_z, 60 * 127 / s_z, 40 * 127 / s_z],
                               atol=1e-9)
    assert_box_matches(crop, out_box, 1.0, "no jitter")


# --- the pair dataset (crop pack on disk) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_pack(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    return write_pack(root, {
        "synth__wide": [centred_box(90, 50, d, -d) for d in (0, 3, 6)],
        "synth__tall": [centred_box(48, 84, -d, d) for d in (0, 4)],
    }, statics=[centred_box(64, 64), centred_box(100, 40, 5, 5)])


def test_read_crop_pack_layout(small_pack):
    seqs = read_crop_pack(small_pack)
    assert [s.name for s in seqs] == ["synth__wide", "synth__tall", "coco/000000.jpg", "coco/000001.jpg"]
    assert [len(s) for s in seqs] == [3, 2, 1, 1] and [s.static for s in seqs] == [False, False, True, True]
    np.testing.assert_array_equal(seqs[0].frame_ids, [0, 3, 6])
    np.testing.assert_array_equal(seqs[0].boxes[1], centred_box(90, 50, 3, -3))
    assert [s.name for s in read_crop_pack(small_pack, exclude=("coco",))] == ["synth__wide", "synth__tall"]


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_pair_dataset_boxes_follow_crops_and_flips(small_pack, flip):
    seqs = read_crop_pack(small_pack)
    sampler = PairSampler([seqs], [1.0], [100], negative_share=0.3, seed=3)
    augment = AugmentConfig(**{**NO_AUGMENT, "template_shift": 4.0, "template_scale": 0.05, "search_shift": 48.0,
                               "search_scale": 0.15, "flip": flip})
    dataset = PairDataset(sampler, augment, GRID16, pairs_per_epoch=10, seed=3)
    expected_side = "right" if flip else "left"
    negatives = 0
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]
            assert item["template"].shape == (3, 127, 127) and item["search"].shape == (3, 255, 255)
            search = item["search"].numpy().transpose(1, 2, 0)
            template = item["template"].numpy().transpose(1, 2, 0)
            box = item["box"].numpy().astype(np.float64)
            what = f"epoch {epoch} item {i}"
            assert_box_matches(search, box, 1.5, what)  # JPEG edges: a little more than 1 px
            assert marker_side(search, box) == expected_side, what
            t_extent = target_extent(template)
            assert t_extent is not None
            assert marker_side(template, t_extent) == expected_side, what
            assert abs(t_extent[0] + t_extent[2] / 2 - 63.5) <= 6 and abs(t_extent[1] + t_extent[3] / 2 - 63.5) <= 6
            again = dataset[i]
            assert all(bool((again[k] == item[k]).all()) for k in item)  # the same pair and augmentation
            if bool(item["negative"]):
                negatives += 1
                assert not item["cls"].any() and not item["reg_weight"].any()
                continue
            # targets are those of the (flipped) box: positive cells around its centre, reg = distances
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            pi, pj = np.nonzero(item["cls"].numpy())
            assert len(pi) == 5, what
            assert abs(GRID16.origin + GRID16.stride * pj.mean() - cx) <= GRID16.stride / 2
            assert abs(GRID16.origin + GRID16.stride * pi.mean() - cy) <= GRID16.stride / 2
            i0, j0 = 5, 5
            x0 = GRID16.origin + GRID16.stride * j0
            np.testing.assert_allclose(item["reg"][:, i0, j0].numpy(),
                                       [x0 - box[0], x0 - box[1], box[0] + box[2] - x0, box[1] + box[3] - x0],
                                       atol=1e-3)
    assert negatives > 0


# --- bad input ------------------------------------------------------------------------------------------------------
def write_boxes(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEADER = "file,frame,x,y,w,h\n"


@pytest.mark.parametrize("body,line,words", [
    ("000000.jpg,0,10,10,50,50\n000001.jpg,3,abc,10,50,50\n", 3, "'x' is not a number: 'abc'"),
    ("000000.jpg,0,10,10,50,50\n000001.jpg,x3,10,10,50,50\n", 3, "'frame' is not a number"),
    ("000000.jpg,0,10,10,50,nan\n", 2, "'h' is not finite"),
    ("000000.jpg,0,10,10,50\n", 2, "expected at least 6 columns"),
    ("000000.jpg,0,400,10,50,50\n", 2, "lies outside the 381x381 crop"),
    ("000000.jpg,0,10,-70,50,60\n", 2, "lies outside"),
    ("000000.jpg,0,10,10,0,50\n", 2, "non-positive size"),
])
def test_malformed_box_file_names_file_and_line(tmp_path, body, line, words):
    path = write_boxes(tmp_path / "seq" / "boxes.csv", HEADER + body)
    with pytest.raises(DataError) as info:
        read_box_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert words in message


def test_empty_box_files(tmp_path):
    empty = write_boxes(tmp_path / "a" / "boxes.csv", "")
    with pytest.raises(DataError, match=rf"^{empty}: empty box file"):
        read_box_csv(empty)
    header_only = write_boxes(tmp_path / "b" / "boxes.csv", HEADER)
    with pytest.raises(DataError, match=rf"^{header_only}: no boxes"):
        read_box_csv(header_only)
    bad_header = write_boxes(tmp_path / "c" / "boxes.csv", "name,frame,x,y,w,h\n")
    with pytest.raises(DataError, match=rf"^{bad_header}:1: header"):
        read_box_csv(bad_header)


def test_crop_pack_errors(tmp_path):
    root = write_pack(tmp_path / "pack", {"synth__a": [centred_box(60, 60)]})
    (root / "synth__a" / "000000.jpg").unlink()
    with pytest.raises(DataError, match=rf"^{root / 'synth__a' / 'boxes.csv'}:2: image 000000.jpg not found"):
        read_crop_pack(root)
    write_pack(root, {"synth__a": [centred_box(60, 60)]})
    (root / "index.csv").write_text("folder,source,frames,fps_class\nsynth__a,synth,1,30\nsynth__b,synth,1,30\n")
    with pytest.raises(DataError, match=rf"^{root / 'index.csv'}:3: folder synth__b not found"):
        read_crop_pack(root)
    # empty datasets: an index without rows, or every folder excluded
    (root / "index.csv").write_text("folder,source,frames,fps_class\n")
    with pytest.raises(DataError, match=rf"^{root}: the crop pack holds no usable sequence"):
        read_crop_pack(root)
    (root / "index.csv").write_text("folder,source,frames,fps_class\nsynth__a,synth,1,30\n")
    with pytest.raises(DataError, match="no usable sequence"):
        read_crop_pack(root, exclude=("synth__a",))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'none' / 'index.csv'}: crop-pack index not found"):
        read_crop_pack(tmp_path / "none")


def test_undecodable_image_names_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot decode training image {path}"):
        load_image(path)


def test_unknown_config_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\noptim:\n  lr: 0.1\n  lr_head: 0.2\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    message = str(info.value)
    assert str(path) in message and "optim" in message and "unknown key(s) lr_head" in message
    path.write_text("nmae: x\n")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown key\(s\) nmae"):
        load_train_config(path)
    path.write_text("data:\n  sources:\n    - path: train\n      fame_range: 3\n")
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]: unknown key\(s\) fame_range") as info:
        load_train_config(path)
    assert str(path) in str(info.value)
    path.write_text("optim:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"optim\.epochs: expected int, got 'ten'"):
        load_train_config(path)


def test_cli_reports_bad_input_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  bacth_size: 4\n")
    assert cli.main([str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ocean-train: error: ") and str(bad) in err and "bacth_size" in err
    # an empty dataset: the pack's index lists no folder
    pack = tmp_path / "empty_pack"
    pack.mkdir()
    (pack / "index.csv").write_text("folder,source,frames,fps_class\n")
    good = tmp_path / "empty.yaml"
    good.write_text(f"output: {tmp_path / 'out'}\ndevice: cpu\ndata:\n  sources:\n    - path: {pack}\n"
                    "model:\n  channels: 16\n  tower_depth: 1\n  pretrained: ''\nvalidation:\n  every: 0\n")
    assert cli.main([str(good), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{pack}: the crop pack holds no usable sequence" in err


# --- distractor negatives -------------------------------------------------------------------------------------------
def labelled(name: str, category: str, image: str) -> TrainSequence:
    return TrainSequence(name, (Path(f"/nowhere/{name}.jpg"),), np.array([[5.0, 5.0, 9.0, 9.0]]), np.array([0]),
                         True, category, image)


def test_distractor_negatives_show_the_same_kind_never_the_target_itself():
    """Same category, another image: never the template's own crop, nor another crop of its image (which could
    show the target); without a category the negative is any other sequence, as before."""
    statics = [labelled("dog1", "dog", "10"), labelled("dog2", "dog", "10"), labelled("dog3", "dog", "11"),
               labelled("dog4", "dog", "12"), labelled("cat1", "cat", "11"), labelled("lone", "zebra", "13"),
               labelled("anon", "", "")]
    videos = [video("a", list(range(0, 30, 3)))]
    sampler = PairSampler([videos, statics], weights=[1.0, 3.0], frame_ranges=[10, 0], negative_share=0.6, seed=3,
                          distractor_share=1.0)
    names = [s.name for s in sampler.sequences]
    index = {n: i for i, n in enumerate(names)}
    assert sorted(names[i] for i in sampler.distractors(index["dog1"])) == ["dog3", "dog4"]
    assert sorted(names[i] for i in sampler.distractors(index["dog3"])) == ["dog1", "dog2", "dog4"]
    assert len(sampler.distractors(index["lone"])) == 0 and len(sampler.distractors(index["anon"])) == 0
    seen = {n: set() for n in names}
    for i in range(3000):
        pair = sampler.pair(0, i)
        if not pair.negative:
            continue
        t, s = sampler.sequences[pair.template[0]], sampler.sequences[pair.search[0]]
        assert s is not t and not (t.image and s.image == t.image), (t.name, s.name)
        seen[t.name].add(s.name)
        if t.category == "dog":
            assert s.category == "dog", (t.name, s.name)  # distractor_share 1: always another dog
    assert seen["dog1"] == {"dog3", "dog4"}
    assert len(seen["lone"]) > 2  # no other zebra: any other sequence


def test_crop_pack_reads_coco_category_and_image(tmp_path):
    folder = tmp_path / "pack" / "coco"
    folder.mkdir(parents=True)
    import cv2

    cv2.imwrite(str(folder / "000000.jpg"), np.zeros((381, 381, 3), np.uint8))
    (folder / "boxes.csv").write_text("file,frame,x,y,w,h,image_id,category\n000000.jpg,0,150,150,60,40,790,dog\n")
    (tmp_path / "pack" / "index.csv").write_text("folder,source,frames,fps_class\ncoco,coco,1,static\n")
    (seq,) = read_crop_pack(tmp_path / "pack")
    assert seq.static and seq.category == "dog" and seq.image == "790"
