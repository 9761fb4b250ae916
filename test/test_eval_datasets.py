"""Dataset readers: the bundled real sequences, and small fixtures written in each benchmark's real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocean_ros.core.geometry import polygon_to_xywh
from ocean_ros.eval import datasets
from ocean_ros.eval.datasets import open_dataset
from ocean_ros.eval.sequences import AnnotationError, open_sequence, parse_boxes


def write_images(folder: Path, count: int, pattern: str = "{:08d}.jpg", first: int = 1) -> None:
    """Empty image files: the readers list frames without decoding them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        (folder / pattern.format(i)).write_bytes(b"")


# --- real sequences -------------------------------------------------------------------------------------------------
def test_otb_tab_separated_crossing(sequences_dir):
    seq = open_sequence(sequences_dir / "Crossing")
    assert (seq.layout, len(seq), seq.annotation_offset) == ("OTB", 120, 1.0)
    first = (sequences_dir / "Crossing" / "groundtruth_rect.txt").read_text().splitlines()[0].split("\t")
    # 1-based file values: x, y lose 1 (TracKit's OTB convention); w, h as written
    np.testing.assert_array_equal(seq.ground_truth[0], [float(first[0]) - 1, float(first[1]) - 1, 17, 50])
    assert seq.frames[0].name == "0001.jpg" and seq.frames[-1].name == "0120.jpg"
    assert seq.image_size() == (360, 240) and seq.visible.all() and seq.polygons is None


@pytest.mark.parametrize("name,frames", [("bag", 196), ("ball1", 105)])
def test_vot_polygons(sequences_dir, name, frames):
    seq = open_sequence(sequences_dir / name)
    assert (seq.layout, len(seq), seq.annotation_offset) == ("VOT", frames, 0.0)
    rows = (sequences_dir / name / "groundtruth.txt").read_text().splitlines()
    values = [float(v) for v in rows[0].split(",")]
    assert seq.polygons.shape == (frames, 8)
    expected = polygon_to_xywh(values) if len(values) == 8 else values
    np.testing.assert_allclose(seq.ground_truth[0], expected)
    assert seq.frames[0].parent.name == "color"


def test_dtb70_comma_separated_surfing06(sequences_dir):
    seq = open_dataset(sequences_dir / "Surfing06", layout="DTB70").sequences[0]
    assert (seq.layout, len(seq), seq.image_size()) == ("DTB70", 106, (1280, 720))
    np.testing.assert_array_equal(seq.ground_truth[1], [721.5, 307, 41, 60])  # file: 722.5,308,41,60 (1-based)
    assert open_sequence(sequences_dir / "Surfing06").layout == "OTB"  # same folder layout as OTB


def test_folder_of_mixed_sequences(sequences_dir):
    dataset = open_dataset(sequences_dir)
    assert {s.name for s in dataset.sequences} == {"Crossing", "bag", "ball1", "Surfing06"}
    assert dataset.select(["ball1", "Crossing"]).sequences[1].name == "Crossing"
    with pytest.raises(AnnotationError, match="no sequence Nope"):
        dataset.select(["Nope"])


def test_slicing_keeps_annotations_aligned(sequences_dir):
    seq = open_sequence(sequences_dir / "bag")
    part = seq.sliced(10, 15)
    assert len(part) == 5 and part.frames[0] == seq.frames[10]
    np.testing.assert_array_equal(part.polygons, seq.polygons[10:15])
    with pytest.raises(ValueError, match="selects no frame"):
        seq.sliced(500, 600)


# --- fixtures in the real layouts ------------------------------------------------------------------------------------
def test_otb_multi_target_and_space_delimiter(tmp_path):
    folder = tmp_path / "Jogging"
    write_images(folder / "img", 3, "{:04d}.jpg")
    (folder / "groundtruth_rect.1.txt").write_text("1 2 3 4\n2 3 4 5\n3 4 5 6\n")
    (folder / "groundtruth_rect.2.txt").write_text("10,20,30,40\n11,21,31,41\n\n12,22,32,42\n")
    dataset = open_dataset(folder)
    assert [s.name for s in dataset.sequences] == ["Jogging-1", "Jogging-2"]
    np.testing.assert_array_equal(dataset.sequences[1].ground_truth[2], [11, 21, 32, 42])
    assert open_sequence(folder, target=2).name == "Jogging-2"
    with pytest.raises(AnnotationError, match="holds 2 targets"):
        open_sequence(folder)


def test_otb_known_frame_range(tmp_path):
    folder = tmp_path / "Football1"
    write_images(folder / "img", 80, "{:04d}.jpg")
    (folder / "groundtruth_rect.txt").write_text("1,1,5,5\n" * 74)
    seq = open_sequence(folder)
    assert len(seq) == 74 and seq.frames[-1].name == "0074.jpg"


def test_vot_four_value_rows_and_list(tmp_path):
    root = tmp_path / "vot2016"
    for name in ("b", "a"):
        write_images(root / name / "color", 4)
        (root / name / "groundtruth.txt").write_text("0,0,10,10\n1,1,10,10\n2,2,10,10\n3,3,10,10\n")
    (root / "list.txt").write_text("b\na\n")
    dataset = open_dataset(root)
    assert [s.name for s in dataset.sequences] == ["b", "a"]  # list.txt order
    assert dataset.layout == "VOT" and dataset.sequences[0].polygons is None
    np.testing.assert_array_equal(dataset.sequences[0].ground_truth[3], [3, 3, 10, 10])


def test_uav123_nan_rows_and_split_ranges(tmp_path, monkeypatch):
    root = tmp_path / "UAV123"
    write_images(root / "data_seq" / "UAV123" / "bird9", 12, "{:06d}.jpg")
    write_images(root / "data_seq" / "UAV123" / "boat9", 3, "{:06d}.jpg")
    anno = root / "anno" / "UAV123"
    anno.mkdir(parents=True)
    (anno / "bird9_2.txt").write_text("5,6,7,8\nNaN,NaN,NaN,NaN\n6,7,8,9\n7,8,9,10\n")
    (anno / "boat9.txt").write_text("1,1,2,2\n2,2,2,2\n3,3,2,2\n")
    monkeypatch.setitem(datasets.UAV123_RANGES, "bird9_2", (5, 8))
    dataset = open_dataset(root)
    assert dataset.layout == "UAV123" and [s.name for s in dataset.sequences] == ["bird9_2", "boat9"]
    bird = dataset.sequences[0]
    assert [p.name for p in bird.frames] == ["000005.jpg", "000006.jpg", "000007.jpg", "000008.jpg"]
    assert np.isnan(bird.ground_truth[1]).all() and not bird.visible[1]
    np.testing.assert_array_equal(bird.ground_truth[0], [4, 5, 7, 8])
    assert len(dataset.sequences[1]) == 3


def test_uav123_split_without_range_is_refused(tmp_path):
    root = tmp_path / "UAV123"
    write_images(root / "data_seq" / "UAV123" / "kite7", 10, "{:06d}.jpg")
    (root / "anno" / "UAV123").mkdir(parents=True)
    (root / "anno" / "UAV123" / "kite7_2.txt").write_text("1,1,2,2\n" * 4)
    with pytest.raises(AnnotationError, match="no known frame range"):
        open_dataset(root)
    # a UAV123 table entry names its image folder and frames
    assert datasets.UAV123_RANGES["bird1_2"] == (775, 1477)


def write_got10k_sequence(folder: Path, boxes: list[list[float]], absence: list[int], cover: list[int],
                          resolution: tuple[int, int] = (640, 480)) -> None:
    write_images(folder, len(boxes))
    (folder / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in boxes))
    (folder / "absence.label").write_text("".join(f"{a}\n" for a in absence))
    (folder / "cover.label").write_text("".join(f"{c}\n" for c in cover))
    (folder / "cut_by_image.label").write_text("0\n" * len(boxes))
    (folder / "meta_info.ini").write_text(f"[METAINFO]\nurl: none\nresolution: ({resolution[0]}, {resolution[1]})\n")


def test_got10k_labels_and_resolution(tmp_path):
    root = tmp_path / "val"
    boxes = [[10, 10, 20, 20], [11, 11, 20, 20], [12, 12, 20, 20]]
    write_got10k_sequence(root / "GOT-10k_Val_000001", boxes, [0, 1, 0], [8, 0, 5])
    (root / "list.txt").write_text("GOT-10k_Val_000001\n")
    seq = open_dataset(root).sequences[0]
    assert (seq.layout, seq.resolution, seq.annotation_offset) == ("GOT-10k", (640, 480), 0.0)
    assert seq.visible.tolist() == [True, False, True] and seq.cover.tolist() == [8, 0, 5]
    np.testing.assert_array_equal(seq.ground_truth, boxes)


def test_got10k_test_split_has_only_the_first_box(tmp_path):
    folder = tmp_path / "test" / "GOT-10k_Test_000001"
    write_images(folder, 5)
    (folder / "groundtruth.txt").write_text("1,2,3,4\n")
    (folder / "meta_info.ini").write_text("[METAINFO]\n")
    seq = open_sequence(folder)
    assert len(seq) == 5 and np.isnan(seq.ground_truth[1:]).all() and seq.resolution is None


def test_lasot_class_folders_and_visibility(tmp_path):
    folder = tmp_path / "LaSOT" / "airplane" / "airplane-1"
    write_images(folder / "img", 4)
    (folder / "groundtruth.txt").write_text("11,21,5,6\n12,22,5,6\n13,23,5,6\n14,24,5,6\n")
    (folder / "full_occlusion.txt").write_text("0,0,1,0")
    (folder / "out_of_view.txt").write_text("0,1,0,0")
    dataset = open_dataset(tmp_path / "LaSOT")
    seq = dataset.sequences[0]
    assert (dataset.layout, seq.name, seq.annotation_offset) == ("LaSOT", "airplane-1", 1.0)
    assert seq.visible.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(seq.ground_truth[0], [10, 20, 5, 6])


# --- errors -----------------------------------------------------------------------------------------------------------
def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(AnnotationError) as err:
        open_dataset(tmp_path)
    for expected in ("groundtruth_rect.txt", "color/", "absence.label", "full_occlusion.txt", "data_seq"):
        assert expected in str(err.value)
    with pytest.raises(AnnotationError, match="not a sequence folder"):
        open_sequence(tmp_path / "junk")


@pytest.mark.parametrize("text,message", [
    ("1,2,3,4\n1,2,3\n", "row 2 .*has 3 values"),
    ("1,2,3,4\n1,2,x,4\n", "line 2: not a row of numbers"),
    ("", "no ground-truth rows"),
])
def test_malformed_rows_name_file_and_line(tmp_path, text, message):
    folder = tmp_path / "Seq"
    write_images(folder / "img", 2, "{:04d}.jpg")
    (folder / "groundtruth_rect.txt").write_text(text)
    with pytest.raises(AnnotationError, match=message) as err:
        open_sequence(folder)
    assert "groundtruth_rect.txt" in str(err.value)


def test_more_rows_than_images_and_bad_label_counts(tmp_path):
    folder = tmp_path / "Seq"
    write_images(folder / "img", 2, "{:04d}.jpg")
    (folder / "groundtruth_rect.txt").write_text("1,2,3,4\n" * 3)
    with pytest.raises(AnnotationError, match="3 ground-truth rows but only 2 images"):
        open_sequence(folder)
    got = tmp_path / "got"
    write_got10k_sequence(got, [[1, 1, 2, 2]] * 3, [0, 0, 0], [8, 8, 8])
    (got / "cover.label").write_text("8\n8\n")
    with pytest.raises(AnnotationError, match="2 labels for 3 frames"):
        open_sequence(got)


def test_parse_boxes_polygons_and_nan():
    boxes, polygons = parse_boxes("0,0,10,0,10,10,0,10\nnan,nan,nan,nan,nan,nan,nan,nan\n2;2;4;4\n")
    np.testing.assert_allclose(boxes[0], polygon_to_xywh([0, 0, 10, 0, 10, 10, 0, 10]))
    assert np.isnan(boxes[1]).all() and np.isnan(polygons[1]).all()
    np.testing.assert_array_equal(polygons[2], [2, 2, 6, 2, 6, 6, 2, 6])  # a rectangle row in a polygon file


def test_sequences_module_never_imports_datasets():
    """The dependency runs one way: datasets builds on sequences (no import of datasets, not even a lazy one)."""
    import ast
    import inspect

    from ocean_ros.eval import sequences

    tree = ast.parse(inspect.getsource(sequences))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported |= {f"{'.' * node.level}{node.module or ''}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not [name for name in imported if "datasets" in name], imported
    assert datasets.read_sequence_folder is sequences.read_sequence_folder  # still importable from datasets
