"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` <-> numpy, without cv_bridge.

The PyPI ``cv-bridge`` is broken on NumPy 2 and ignores ``step``; this module converts with numpy alone
(plus ``cv2`` for colour conversion and JPEG/PNG coding).

Memory: rclpy stores ``uint8[]`` message fields as ``array.array('B')``, which exports the buffer protocol, so
:func:`image_to_array` returns a *view* of ``msg.data`` (no copy) whenever the message's byte order is native,
both for tight rows and for padded rows (a strided view that skips the padding). Such a view is writable
and aliases the message: writing to it changes ``msg.data``; while it lives, ``msg.data`` cannot be resized in
place. A copy is made only when the data must be byte-swapped (big-endian multi-byte data on a
little-endian host) or when ``msg.data`` is a plain Python sequence rather than a buffer.

Message types are imported lazily, inside the functions that build messages, so importing this module to read
existing messages does not pull in more of the ROS Python stack than the caller already has.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

__all__ = [
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "BGR8_SOURCE_ENCODINGS",
    "array_to_image",
    "bgr8_to_compressed",
    "compressed_to_bgr8",
    "image_to_array",
    "image_to_bgr8",
]


class ImageConversionError(ValueError):
    """An image message or array cannot be converted (bad encoding, size, layout or compressed data)."""


class _Layout(NamedTuple):
    dtype: np.dtype  # native byte order
    channels: int


_LITTLE_ENDIAN_HOST = sys.byteorder == "little"

# Named encodings of sensor_msgs/image_encodings.hpp whose pixel layout is a plain array of one numeric type.
_NAMED: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
}
# OpenCV-style generic encodings: <bits><U|S|F>C<channels>.
_GENERIC_DEPTHS: dict[str, str] = {
    "8U": "u1",
    "8S": "i1",
    "16U": "u2",
    "16S": "i2",
    "32S": "i4",
    "32F": "f4",
    "64F": "f8",
}

_LAYOUTS: dict[str, _Layout] = {name: _Layout(np.dtype(code), ch) for name, (code, ch) in _NAMED.items()}
for _depth, _code in _GENERIC_DEPTHS.items():
    for _ch in (1, 2, 3, 4):
        _LAYOUTS[f"{_depth}C{_ch}"] = _Layout(np.dtype(_code), _ch)
del _depth, _code, _ch

#: Every encoding accepted by :func:`image_to_array` and :func:`array_to_image`.
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

# Channel order of each encoding that image_to_bgr8 accepts. Generic 3/4-channel types follow the OpenCV
# convention (BGR / BGRA), as ROS drivers that publish 8UC3 do.
_COLOR_ORDER: dict[str, str] = {
    "rgb8": "rgb",
    "bgr8": "bgr",
    "rgba8": "rgba",
    "bgra8": "bgra",
    "mono8": "gray",
    "8UC1": "gray",
    "8UC3": "bgr",
    "8UC4": "bgra",
    "mono16": "gray",
    "16UC1": "gray",
    "rgb16": "rgb",
    "bgr16": "bgr",
    "rgba16": "rgba",
    "bgra16": "bgra",
    "32FC1": "gray",
}

#: Encodings accepted by :func:`image_to_bgr8`.
BGR8_SOURCE_ENCODINGS: tuple[str, ...] = tuple(_COLOR_ORDER)

_TO_BGR_CODES: dict[str, int | None] = {
    "bgr": None,
    "rgb": cv2.COLOR_RGB2BGR,
    "bgra": cv2.COLOR_BGRA2BGR,
    "rgba": cv2.COLOR_RGBA2BGR,
    "gray": cv2.COLOR_GRAY2BGR,
}

_COMPRESSED_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
_PNG_COMPRESSION = 3  # OpenCV's default zlib level: a good speed/size balance for bags.


def _layout(encoding: str) -> _Layout:
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported encodings: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return layout


def _buffer(data: Any) -> Any:
    """Something np.frombuffer / np.ndarray(buffer=...) accepts, without copying when ``data`` is a buffer."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    try:
        memoryview(data).release()  # array.array, numpy arrays, ...
        return data
    except TypeError:
        return bytes(data)  # a plain sequence of ints: one copy, unavoidable


def image_to_array(msg: Image) -> np.ndarray:
    """Return the pixels of a ``sensor_msgs/Image`` as an HxW or HxWxC array in the message's channel order.

    Honours ``encoding``, ``step`` (row padding is skipped, never copied into the result) and ``is_bigendian``
    (multi-byte data in non-native order is byte-swapped into a native-order copy). Otherwise the result is a
    zero-copy view of ``msg.data`` (see the module docstring).
    """
    layout = _layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: width={width}, height={height} ({msg.encoding})")
    itemsize = layout.dtype.itemsize
    row_bytes = width * layout.channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{layout.channels * itemsize} = "
            f"{row_bytes} for {msg.encoding}"
        )
    buf = _buffer(msg.data)
    nbytes = memoryview(buf).nbytes
    if nbytes != height * step:
        raise ImageConversionError(
            f"image data has {nbytes} bytes but height*step = {height}*{step} = {height * step} "
            f"({msg.encoding}, width {width})"
        )

    dtype = layout.dtype
    if itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    if layout.channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (step, itemsize)
    else:
        shape = (height, width, layout.channels)
        strides = (step, layout.channels * itemsize, itemsize)
    array = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))  # one copy: byte-swapped, tight, native
    return array


def image_to_bgr8(msg: Image) -> np.ndarray:
    """Return a ``sensor_msgs/Image`` as a C-contiguous HxWx3 uint8 BGR array (the tracker's input).

    - ``bgr8``/``8UC3``: returned as is (a view of ``msg.data`` when rows are tight, else a tight copy);
      ``8UC3``/``8UC4`` are taken as BGR/BGRA, the OpenCV convention.
    - ``rgb8``: channels reversed; ``rgba8``/``bgra8``/``8UC4``: alpha dropped; ``mono8``/``8UC1``: grey
      replicated into 3 channels.
    - 16-bit (``mono16``, ``16UC1``, ``rgb16``, ...): scaled to 8 bit by ``value >> 8`` (the high byte). Depth
      images in millimetres are not a tracking input; this only guarantees they do not crash.
    - ``32FC1``: values clipped to [0, 1] then scaled by 255 and rounded; NaN becomes 0.
    """
    order = _COLOR_ORDER.get(msg.encoding)
    if order is None:
        raise ImageConversionError(
            f"image encoding {msg.encoding!r} cannot be converted to bgr8; supported encodings: "
            f"{', '.join(BGR8_SOURCE_ENCODINGS)}"
        )
    array = image_to_array(msg)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype == np.float32:
        scaled = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(scaled, 0.0, 1.0, out=scaled)
        scaled *= 255.0
        scaled += 0.5
        array = scaled.astype(np.uint8)
    code = _TO_BGR_CODES[order]
    if code is None:
        return np.ascontiguousarray(array)
    # cv2 reads padded rows directly (row stride != width*channels) and always returns a new tight array.
    return cv2.cvtColor(array, code)


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Build a ``sensor_msgs/Image`` from an HxW or HxWxC array whose dtype and channels fit ``encoding``.

    The step is tight (width*channels*itemsize); ``is_bigendian`` follows the array's byte order for
    multi-byte types (native data is sent as is, without a swap); ``header`` is assigned when given.
    """
    from sensor_msgs.msg import Image

    layout = _layout(encoding)
    array = np.asarray(array)
    if array.ndim == 2:
        channels = 1
    elif array.ndim == 3:
        channels = array.shape[2]
    else:
        raise ImageConversionError(f"array must be HxW or HxWxC for {encoding}, got shape {array.shape}")
    if channels != layout.channels:
        raise ImageConversionError(
            f"encoding {encoding} needs {layout.channels} channel(s); "
            f"array of shape {array.shape} has {channels}"
        )
    if array.dtype.kind != layout.dtype.kind or array.dtype.itemsize != layout.dtype.itemsize:
        raise ImageConversionError(
            f"encoding {encoding} needs dtype {layout.dtype.name}, array has dtype {array.dtype.name}"
        )
    height, width = int(array.shape[0]), int(array.shape[1])
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: width={width}, height={height} ({encoding})")

    big_endian = False
    if array.dtype.itemsize > 1:
        order = array.dtype.byteorder
        big_endian = order == ">" or (order in "=|" and not _LITTLE_ENDIAN_HOST)

    msg = Image()
    if header is not None:
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = width * channels * array.dtype.itemsize
    msg.data = array.tobytes()  # C order; ~1 ms for 640x480x3 (assigning the ndarray itself is ~47 ms)
    return msg


def compressed_to_bgr8(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG/PNG ``sensor_msgs/CompressedImage`` into an HxWx3 uint8 BGR array.

    Raises :class:`ImageConversionError` for empty or undecodable data (the message names ``msg.format``).
    """
    fmt = msg.format
    if "compressedDepth" in fmt:
        raise ImageConversionError(
            f"compressed image format {fmt!r} is a compressedDepth image, which is not supported "
            "(depth images are not a tracking input)"
        )
    buf = np.frombuffer(_buffer(msg.data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageConversionError(f"compressed image (format {fmt!r}) has empty data")
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # some builds raise instead of returning None
        raise ImageConversionError(
            f"corrupt compressed image: cannot decode {buf.size} bytes of format {fmt!r}: {exc}"
        ) from exc
    if image is None:
        raise ImageConversionError(
            f"corrupt compressed image: cannot decode {buf.size} bytes of format {fmt!r}"
        )
    return image


def bgr8_to_compressed(
    array: np.ndarray, fmt: str = "jpeg", quality: int = 90, header: Header | None = None
) -> CompressedImage:
    """Encode an HxWx3 uint8 BGR array as a ``sensor_msgs/CompressedImage`` (``fmt`` 'jpeg' or 'png').

    ``quality`` (0-100) applies to JPEG; PNG is lossless and uses zlib level 3. ``msg.format`` is set to
    'jpeg' or 'png', the values sensor_msgs/CompressedImage documents.
    """
    from sensor_msgs.msg import CompressedImage

    key = fmt.lower()
    if key not in _COMPRESSED_FORMATS:
        raise ImageConversionError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ImageConversionError(
            f"bgr8_to_compressed needs an HxWx3 uint8 array, got shape {array.shape} dtype {array.dtype.name}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageConversionError(f"image has zero size: width={array.shape[1]}, height={array.shape[0]}")
    if not 0 <= quality <= 100:
        raise ImageConversionError(f"JPEG quality must be in [0, 100], got {quality}")
    ext = _COMPRESSED_FORMATS[key]
    if ext == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
    ok, encoded = cv2.imencode(ext, array, params)
    if not ok:
        raise ImageConversionError(f"cv2.imencode failed for format {fmt!r} and shape {array.shape}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = encoded.tobytes()
    return msg
