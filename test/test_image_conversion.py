"""Tests of ocean_ros.ros.image_conversion on real sensor_msgs message objects (no mocks, no cv_bridge)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ocean_ros.ros.image_conversion import (
    BGR8_SOURCE_ENCODINGS,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    array_to_image,
    bgr8_to_compressed,
    compressed_to_bgr8,
    image_to_array,
    image_to_bgr8,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# encoding -> (numpy dtype, channels) as the ROS encodings define them.
SPEC: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "8UC1": ("u1", 1),
    "8UC3": ("u1", 3),
    "8UC4": ("u1", 4),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
}
MULTI_BYTE = [enc for enc, (code, _) in SPEC.items() if np.dtype(code).itemsize > 1]
GENERIC_DEPTHS = {"8U": "u1", "8S": "i1", "16U": "u2", "16S": "i2", "32S": "i4", "32F": "f4", "64F": "f8"}
NAMED_16 = {"rgb16": ("u2", 3), "bgr16": ("u2", 3), "rgba16": ("u2", 4), "bgra16": ("u2", 4)}


def _dtype_and_channels(encoding: str) -> tuple[str, int]:
    """Expected layout of an encoding, written out independently of the module's tables."""
    if encoding in SPEC:
        return SPEC[encoding]
    if encoding in NAMED_16:
        return NAMED_16[encoding]
    depth, channels = encoding.split("C")
    return GENERIC_DEPTHS[depth], int(channels)


def _random_pixels(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-10.0, 10.0, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _shape(height: int, width: int, channels: int) -> tuple[int, ...]:
    return (height, width) if channels == 1 else (height, width, channels)


def _make_msg(
    pixels: np.ndarray,
    encoding: str,
    *,
    pad: int = 0,
    big_endian: bool = False,
    garbage: int = 0xAB,
) -> Image:
    """Build an Image by hand (independently of array_to_image), optionally with padded rows / big-endian."""
    height, width = pixels.shape[:2]
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = wire.reshape(height, -1).view(np.uint8)
    row_bytes = rows.shape[1]
    padded = np.full((height, row_bytes + pad), garbage, dtype=np.uint8)
    padded[:, :row_bytes] = rows
    msg = Image()
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = row_bytes + pad
    msg.data = padded.tobytes()
    return msg


def _manual_msg(encoding: str, height: int, width: int, step: int, data: bytes) -> Image:
    msg = Image()
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.step = step
    msg.data = data
    return msg


# --------------------------------------------------------------------------------------------------------
# image_to_array


@pytest.mark.parametrize("encoding", list(SPEC))
def test_image_to_array_tight(encoding: str) -> None:
    code, channels = SPEC[encoding]
    rng = np.random.default_rng(1)
    pixels = _random_pixels(rng, np.dtype(code), _shape(5, 7, channels))
    out = image_to_array(_make_msg(pixels, encoding))
    assert out.shape == pixels.shape
    assert out.dtype == np.dtype(code)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("pad", [1, 3, 16])
@pytest.mark.parametrize("encoding", list(SPEC))
def test_image_to_array_padded_rows_skip_garbage(encoding: str, pad: int) -> None:
    code, channels = SPEC[encoding]
    rng = np.random.default_rng(2)
    pixels = _random_pixels(rng, np.dtype(code), _shape(6, 9, channels))
    msg = _make_msg(pixels, encoding, pad=pad, garbage=0xEE)
    assert msg.step > 9 * channels * np.dtype(code).itemsize
    out = image_to_array(msg)
    assert out.shape == pixels.shape
    np.testing.assert_array_equal(out, pixels)
    # The padding never reaches the result, whatever is done with it afterwards.
    np.testing.assert_array_equal(np.ascontiguousarray(out), pixels)
    assert np.ascontiguousarray(out).nbytes == pixels.nbytes


@pytest.mark.parametrize("pad", [0, 4])
@pytest.mark.parametrize("encoding", MULTI_BYTE)
def test_image_to_array_big_endian(encoding: str, pad: int) -> None:
    code, channels = SPEC[encoding]
    rng = np.random.default_rng(3)
    pixels = _random_pixels(rng, np.dtype(code), _shape(4, 6, channels))
    msg = _make_msg(pixels, encoding, pad=pad, big_endian=True)
    out = image_to_array(msg)
    assert out.dtype == np.dtype(code) and out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)


def test_big_endian_bytes_built_by_hand() -> None:
    # mono16 / 16UC1 / 32FC1 bytes written directly with '>u2' / '>f4', as a big-endian publisher sends them.
    values16 = np.array([[0x0102, 0xFF00], [0x1234, 0x0001]], dtype=np.uint16)
    for encoding in ("mono16", "16UC1"):
        msg = _manual_msg(encoding, 2, 2, 4, values16.astype(">u2").tobytes())
        msg.is_bigendian = 1
        np.testing.assert_array_equal(image_to_array(msg), values16)
        msg.is_bigendian = 0  # the same bytes read little-endian are the swapped values
        np.testing.assert_array_equal(image_to_array(msg), values16.byteswap())
    values32 = np.array([[0.25, -1.5, 3.0e6]], dtype=np.float32)
    msg = _manual_msg("32FC1", 1, 3, 12, values32.astype(">f4").tobytes())
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_to_array(msg), values32)


def test_is_bigendian_ignored_for_single_byte_types() -> None:
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    msg = _make_msg(pixels, "rgb8")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_to_array(msg), pixels)


@pytest.mark.parametrize("encoding", ["rgb16", "bgra16", "16SC1", "32SC1", "64FC1", "8SC1", "32FC3", "16UC4"])
def test_image_to_array_extra_encodings(encoding: str) -> None:
    assert encoding in SUPPORTED_ENCODINGS
    code, channels = _dtype_and_channels(encoding)
    pixels = _random_pixels(np.random.default_rng(4), np.dtype(code), _shape(3, 5, channels))
    for big in (False, True):
        out = image_to_array(_make_msg(pixels, encoding, pad=2, big_endian=big))
        np.testing.assert_array_equal(out, pixels)


# --------------------------------------------------------------------------------------------------------
# zero copy


def test_zero_copy_tight_rgb8() -> None:
    # rclpy keeps uint8[] fields as array.array('B'), which exports the buffer protocol: the result is a view.
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = _make_msg(pixels, "rgb8")
    assert type(msg.data).__name__ == "array"
    out = image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))
    assert out.ctypes.data == np.frombuffer(msg.data, dtype=np.uint8).ctypes.data
    msg.data[0] = 200  # a write to the message shows through the view
    assert out[0, 0, 0] == 200


def test_zero_copy_padded_and_native_multibyte() -> None:
    pixels = np.arange(3 * 4, dtype=np.uint16).reshape(3, 4)
    for pad in (0, 6):
        msg = _make_msg(pixels, "16UC1", pad=pad)
        out = image_to_array(msg)
        assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))
        np.testing.assert_array_equal(out, pixels)


def test_big_endian_is_one_copy() -> None:
    pixels = np.arange(3 * 4, dtype=np.uint16).reshape(3, 4)
    msg = _make_msg(pixels, "mono16", pad=2, big_endian=True)
    out = image_to_array(msg)
    assert not np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))
    assert out.flags.c_contiguous and out.flags.owndata and out.dtype.isnative


def test_image_to_bgr8_bgr8_tight_is_zero_copy() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = _make_msg(pixels, "bgr8")
    out = image_to_bgr8(msg)
    assert out.flags.c_contiguous
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))


# --------------------------------------------------------------------------------------------------------
# array_to_image and round trips


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_round_trip_every_encoding(encoding: str) -> None:
    code, channels = _dtype_and_channels(encoding)
    pixels = _random_pixels(np.random.default_rng(5), np.dtype(code), _shape(7, 11, channels))
    msg = array_to_image(pixels, encoding)
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (7, 11, encoding)
    assert msg.step == 11 * channels * np.dtype(code).itemsize
    assert len(msg.data) == msg.height * msg.step
    assert msg.is_bigendian == 0  # this host is little-endian; native arrays go out as they are
    back = image_to_array(msg)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("encoding", MULTI_BYTE)
def test_array_to_image_big_endian_array(encoding: str) -> None:
    code, channels = SPEC[encoding]
    pixels = _random_pixels(np.random.default_rng(6), np.dtype(code), _shape(3, 4, channels))
    big = pixels.astype(np.dtype(code).newbyteorder(">"))
    msg = array_to_image(big, encoding)
    assert msg.is_bigendian == 1
    assert bytes(msg.data) == big.tobytes()
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_array_to_image_header_non_contiguous_and_hxwx1() -> None:
    header = Header(frame_id="camera_optical")
    header.stamp.sec = 12
    header.stamp.nanosec = 345
    pixels = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    view = pixels[::2, 1::2]  # not contiguous
    msg = array_to_image(view, "bgr8", header=header)
    assert msg.header.frame_id == "camera_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    np.testing.assert_array_equal(image_to_array(msg), view)
    mono = array_to_image(np.arange(6, dtype=np.uint8).reshape(2, 3, 1), "mono8")
    assert mono.step == 3
    np.testing.assert_array_equal(image_to_array(mono), np.arange(6, dtype=np.uint8).reshape(2, 3))


@pytest.mark.parametrize(
    ("array", "encoding", "needle"),
    [
        (np.zeros((2, 2, 3), np.uint8), "mono8", "channel"),
        (np.zeros((2, 2), np.uint8), "rgb8", "channel"),
        (np.zeros((2, 2, 3), np.uint16), "rgb8", "dtype"),
        (np.zeros((2, 2), np.float64), "32FC1", "dtype"),
        (np.zeros((2, 2), np.int16), "mono16", "dtype"),
        (np.zeros((2, 2, 3, 1), np.uint8), "rgb8", "HxW"),
        (np.zeros((0, 4, 3), np.uint8), "rgb8", "zero size"),
    ],
)
def test_array_to_image_validation(array: np.ndarray, encoding: str, needle: str) -> None:
    with pytest.raises(ImageConversionError, match=needle):
        array_to_image(array, encoding)


def test_array_to_image_unsupported_encoding() -> None:
    with pytest.raises(ImageConversionError) as info:
        array_to_image(np.zeros((2, 2), np.uint8), "yuv422")
    assert "'yuv422'" in str(info.value) and "rgb8" in str(info.value) and "32FC1" in str(info.value)


def test_array_to_image_data_is_array_of_bytes_fast_path() -> None:
    msg = array_to_image(np.zeros((480, 640, 3), np.uint8), "rgb8")
    assert type(msg.data).__name__ == "array" and msg.data.typecode == "B"
    assert len(msg.data) == 480 * 640 * 3


# --------------------------------------------------------------------------------------------------------
# image_to_bgr8


def _single_pixel_msg(encoding: str, values: list, dtype: str, pad: int) -> Image:
    pixel = np.array(values, dtype=dtype).reshape(1, 1, -1)
    return _make_msg(pixel[..., 0] if len(values) == 1 else pixel, encoding, pad=pad)


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize(
    ("encoding", "values", "dtype", "expected"),
    [
        ("rgb8", [255, 0, 0], "u1", (0, 0, 255)),  # pure red
        ("rgb8", [10, 20, 30], "u1", (30, 20, 10)),
        ("bgr8", [10, 20, 30], "u1", (10, 20, 30)),
        ("rgba8", [10, 20, 30, 99], "u1", (30, 20, 10)),
        ("bgra8", [10, 20, 30, 99], "u1", (10, 20, 30)),
        ("mono8", [77], "u1", (77, 77, 77)),
        ("8UC1", [78], "u1", (78, 78, 78)),
        ("8UC3", [1, 2, 3], "u1", (1, 2, 3)),  # OpenCV convention: BGR
        ("8UC4", [1, 2, 3, 4], "u1", (1, 2, 3)),  # BGRA
        ("mono16", [0xABCD], "u2", (0xAB, 0xAB, 0xAB)),  # >> 8
        ("16UC1", [0x01FF], "u2", (0x01, 0x01, 0x01)),
        ("rgb16", [0xFF00, 0x1000, 0x0100], "u2", (0x01, 0x10, 0xFF)),
        ("32FC1", [0.5], "f4", (128, 128, 128)),
        ("32FC1", [2.0], "f4", (255, 255, 255)),  # clipped high
        ("32FC1", [-3.0], "f4", (0, 0, 0)),  # clipped low
        ("32FC1", [float("nan")], "f4", (0, 0, 0)),
    ],
)
def test_image_to_bgr8_known_pixels(
    encoding: str, values: list, dtype: str, expected: tuple, pad: int
) -> None:
    msg = _single_pixel_msg(encoding, values, dtype, pad=pad)
    out = image_to_bgr8(msg)
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert tuple(int(v) for v in out[0, 0]) == expected


@pytest.mark.parametrize("encoding", list(SPEC))
def test_image_to_bgr8_every_listed_encoding_full_image(encoding: str) -> None:
    code, channels = SPEC[encoding]
    rng = np.random.default_rng(7)
    if code == "f4":
        pixels = rng.uniform(0.0, 1.0, size=(9, 13)).astype(np.float32)
    else:
        pixels = _random_pixels(rng, np.dtype(code), _shape(9, 13, channels))
    for pad, big in ((0, False), (7, False), (3, True)):
        if big and np.dtype(code).itemsize == 1:
            continue
        out = image_to_bgr8(_make_msg(pixels, encoding, pad=pad, big_endian=big))
        assert out.shape == (9, 13, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        if encoding in ("rgb8",):
            expected = pixels[..., ::-1]
        elif encoding in ("rgba8",):
            expected = pixels[..., 2::-1]
        elif encoding in ("bgr8", "8UC3", "bgra8", "8UC4"):
            expected = pixels[..., :3]
        elif code == "u1":
            expected = np.repeat(pixels[..., None], 3, axis=2)
        elif code == "u2":
            expected = np.repeat((pixels >> 8).astype(np.uint8)[..., None], 3, axis=2)
        else:
            expected = np.repeat(np.round(pixels * 255.0).astype(np.uint8)[..., None], 3, axis=2)
        np.testing.assert_array_equal(out, expected)


def test_image_to_bgr8_unsupported_encoding_names_list() -> None:
    msg = array_to_image(np.zeros((2, 2), np.int32), "32SC1")
    with pytest.raises(ImageConversionError) as info:
        image_to_bgr8(msg)
    text = str(info.value)
    assert "'32SC1'" in text and all(enc in text for enc in BGR8_SOURCE_ENCODINGS)


def test_image_to_bgr8_timing_640x480_rgb8() -> None:
    pixels = np.random.default_rng(8).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    msg = array_to_image(pixels, "rgb8")
    image_to_bgr8(msg)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        out = image_to_bgr8(msg)
    per_call_ms = (time.perf_counter() - start) / n * 1e3
    np.testing.assert_array_equal(out, pixels[..., ::-1])
    print(f"\nimage_to_bgr8 640x480 rgb8: {per_call_ms:.3f} ms/frame (mean of {n})")


# --------------------------------------------------------------------------------------------------------
# errors on Image


def test_unsupported_encoding_names_encoding_and_list() -> None:
    msg = _manual_msg("bayer_rggb8", 2, 2, 2, bytes(4))
    with pytest.raises(ImageConversionError) as info:
        image_to_array(msg)
    text = str(info.value)
    assert "'bayer_rggb8'" in text
    assert all(enc in text for enc in SPEC)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("size", [0, 11, 13, 100])
def test_wrong_buffer_size_names_both_numbers(size: int) -> None:
    msg = _manual_msg("mono8", 3, 4, 4, bytes(size))
    with pytest.raises(ImageConversionError) as info:
        image_to_array(msg)
    text = str(info.value)
    assert f"{size} bytes" in text and "height*step" in text and "= 12" in text


def test_step_too_small_names_both_numbers() -> None:
    msg = _manual_msg("rgb8", 2, 4, 11, bytes(22))  # needs 4*3 = 12
    with pytest.raises(ImageConversionError) as info:
        image_to_array(msg)
    text = str(info.value)
    assert "step 11" in text and "12" in text
    msg16 = _manual_msg("16UC1", 2, 4, 7, bytes(14))  # needs 4*2 = 8
    with pytest.raises(ImageConversionError, match=r"step 7 .* 8"):
        image_to_bgr8(msg16)


@pytest.mark.parametrize(("height", "width"), [(0, 4), (4, 0), (0, 0)])
def test_zero_size(height: int, width: int) -> None:
    msg = _manual_msg("bgr8", height, width, width * 3, b"")
    with pytest.raises(ImageConversionError, match="zero size"):
        image_to_array(msg)
    with pytest.raises(ImageConversionError, match="zero size"):
        image_to_bgr8(msg)


# --------------------------------------------------------------------------------------------------------
# CompressedImage


def _test_image(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 2) % 256], axis=2).astype(np.uint8)


def test_png_round_trip_exact() -> None:
    image = np.random.default_rng(9).integers(0, 256, size=(30, 41, 3), dtype=np.uint8)
    header = Header(frame_id="cam")
    msg = bgr8_to_compressed(image, fmt="png", header=header)
    assert isinstance(msg, CompressedImage)
    assert msg.format == "png" and msg.header.frame_id == "cam"
    assert bytes(msg.data[:8]) == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(compressed_to_bgr8(msg), image)


def test_jpeg_round_trip_within_tolerance() -> None:
    image = _test_image()
    image[:8, :8] = (0, 0, 255)  # a red block keeps its channel order
    msg = bgr8_to_compressed(image, fmt="jpeg", quality=95)
    assert msg.format == "jpeg" and bytes(msg.data[:2]) == b"\xff\xd8"
    out = compressed_to_bgr8(msg)
    assert out.shape == image.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16))
    assert diff.mean() < 3.0 and np.percentile(diff, 99) < 20
    assert out[2, 2, 2] > 200 and out[2, 2, 0] < 50  # still red in BGR order
    low = bgr8_to_compressed(image, quality=10)
    assert len(low.data) < len(msg.data)


def test_compressed_decode_accepts_image_transport_format_string_and_gray_jpeg() -> None:
    msg = bgr8_to_compressed(_test_image(), fmt="JPEG")
    msg.format = "rgb8; jpeg compressed bgr8"
    assert compressed_to_bgr8(msg).shape == (48, 64, 3)


def test_corrupt_compressed_names_format() -> None:
    good = bgr8_to_compressed(_test_image(), fmt="png")
    msg = CompressedImage(format="png")
    msg.data = b"\x89PNG not really a png" + bytes(100)
    with pytest.raises(ImageConversionError, match=r"corrupt compressed image.*'png'"):
        compressed_to_bgr8(msg)
    truncated = CompressedImage(format="jpeg")
    truncated.data = bytes(good.data[:20])
    with pytest.raises(ImageConversionError, match=r"corrupt.*'jpeg'"):
        compressed_to_bgr8(truncated)


def test_empty_compressed_raises() -> None:
    with pytest.raises(ImageConversionError, match=r"'jpeg'.*empty"):
        compressed_to_bgr8(CompressedImage(format="jpeg"))


def test_compressed_depth_is_refused_clearly() -> None:
    msg = bgr8_to_compressed(_test_image(), fmt="png")
    msg.format = "16UC1; compressedDepth png"
    with pytest.raises(ImageConversionError, match="compressedDepth"):
        compressed_to_bgr8(msg)


@pytest.mark.parametrize(
    ("array", "kwargs", "needle"),
    [
        (np.zeros((4, 4, 3), np.uint8), {"fmt": "tiff"}, "unsupported compressed format 'tiff'"),
        (np.zeros((4, 4), np.uint8), {}, "HxWx3 uint8"),
        (np.zeros((4, 4, 3), np.float32), {}, "HxWx3 uint8"),
        (np.zeros((0, 4, 3), np.uint8), {}, "zero size"),
        (np.zeros((4, 4, 3), np.uint8), {"quality": 101}, "quality"),
    ],
)
def test_bgr8_to_compressed_validation(array: np.ndarray, kwargs: dict, needle: str) -> None:
    with pytest.raises(ImageConversionError, match=needle):
        bgr8_to_compressed(array, **kwargs)


# --------------------------------------------------------------------------------------------------------
# module boundaries


def test_import_is_lazy_about_message_types() -> None:
    code = (
        "import sys, ocean_ros.ros.image_conversion as m; "
        "print(sorted(k for k in ('sensor_msgs.msg', 'std_msgs.msg', 'rclpy') if k in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_core_does_not_import_ros_conversion() -> None:
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "ocean_ros" / "core").rglob("*.py")
        if "image_conversion" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
