"""The plain-JPEG path of the image step (`images.decode_plain_jpeg`: simplejpeg's header and
pixels, no Pillow) against the path it replaced (Pillow's header, OpenCV's reduced decode), on
Pillow 11.0.0's real test images (EXIF orientations, grey, CMYK, progressive, multi-picture,
truncated and corrupt files) at every DCT reduction: the same pixels byte for byte or the same
rejection, and the header reader never raising on any bytes."""

from __future__ import annotations

import io
import struct
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from PIL import Image

from support.realdata import sdist
from wit_builder.crawl.download import images
from wit_builder.crawl.download.images import (ImageRejected, ImageSettings, decode,
                                               decode_plain_jpeg, plain_jpeg_header)

pytestmark = pytest.mark.filterwarnings("ignore")  # Pillow warns about the corrupt files

# Output sizes that make the step decode at 1/1, 1/2, 1/4 and 1/8 on these images (~128-2,000 px).
IMAGE_SIZES = (2048, 256, 64, 16)
PLAIN_AT_LEAST = 30   # of the 62 (measured: 32)


@pytest.fixture(scope="module")
def pillow_jpegs() -> dict[str, bytes]:
    folder = sdist("pillow", "11.0.0") / "Tests" / "images"
    found = {path.name: path.read_bytes() for path in sorted(folder.rglob("*"))
             if path.is_file() and path.read_bytes()[:3] == b"\xff\xd8\xff"}
    assert len(found) >= 60, f"Pillow's test images: {len(found)} JPEG files"
    return found


def old_decode(data: bytes, settings: ImageSettings):
    """The image step's decode before the plain-JPEG path: Pillow's header, OpenCV's pixels."""
    image = images.open_header(data)
    width, height = images.oriented_size(image)
    images.check_dimensions(width, height, settings)
    factor = images.reduction_factor(width, height, settings)
    fast = image.format == "JPEG" and image.mode in ("RGB", "L") and \
        images.JPEG_END in data[-4096:]
    array = images.decode_with_opencv(data, factor) if fast else None
    if array is None:
        array = images.decode_with_pillow(image, factor)
    return array, width, height


def outcome(function, data: bytes, settings: ImageSettings):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(data, settings)
    except ImageRejected as rejected:
        return rejected.status


@pytest.mark.parametrize("image_size", IMAGE_SIZES)
def test_same_pixels_or_status_as_pillow_header_and_opencv_decode(pillow_jpegs, image_size):
    settings = ImageSettings(image_size=image_size, min_size=1, max_aspect_ratio=1e9)
    plain = 0
    for name, data in pillow_jpegs.items():
        before, after = outcome(old_decode, data, settings), outcome(decode, data, settings)
        if isinstance(before, str) or isinstance(after, str):
            assert before == after, name
            continue
        assert after[1:] == before[1:], name
        assert after[0].shape == before[0].shape and np.array_equal(after[0], before[0]), name
        plain += outcome(decode_plain_jpeg, data, settings) is not None
    assert plain > PLAIN_AT_LEAST, f"only {plain} of Pillow's JPEGs took the plain path"


def test_rotated_multi_picture_and_cmyk_files_take_the_general_path(pillow_jpegs):
    settings = ImageSettings(min_size=1, max_aspect_ratio=1e9)
    for orientation in range(2, 9):
        data = pillow_jpegs[f"hopper_orientation_{orientation}.jpg"]
        assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation
        assert not plain_jpeg_header(data)
    for name in ("sugarshack.mpo", "frozenpond.mpo", "pil_sample_cmyk.jpg"):
        assert decode_plain_jpeg(pillow_jpegs[name], settings) is None, name
    assert plain_jpeg_header(pillow_jpegs["hopper.jpg"])
    assert decode_plain_jpeg(pillow_jpegs["hopper.jpg"], settings) is not None


def with_exif(jpeg: bytes, order: str, entries: list[tuple[int, int, int, int]]) -> bytes:
    """`jpeg` with an APP1 Exif segment after its SOI: a TIFF block in byte order `order`
    ("<" or ">") whose first IFD holds `entries` (tag, type, count, value as a SHORT)."""
    ifd = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHIHH", tag, kind, count, value, 0)
        for tag, kind, count, value in entries) + b"\x00\x00\x00\x00"
    tiff = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8) + ifd
    segment = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def test_exif_orientations_in_either_byte_order_as_pillow_reads_them():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 32), (200, 30, 30)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    make = (0x010F, 2, 1, 0)   # another tag first: the reader walks the whole IFD
    for order in "<>":
        for orientation in range(1, 9):
            data = with_exif(jpeg, order, [make, (0x0112, 3, 1, orientation)])
            assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation
            assert plain_jpeg_header(data) is (orientation == 1)
        assert plain_jpeg_header(with_exif(jpeg, order, [make]))      # no orientation tag
        assert not plain_jpeg_header(with_exif(jpeg, order, [(0x0112, 4, 1, 1)]))  # a LONG
    rotated = decode(with_exif(jpeg, ">", [(0x0112, 3, 1, 8)]), ImageSettings(min_size=1))
    assert rotated[0].shape[:2] == (64, 32) and rotated[1:] == (32, 64)   # a quarter turn
    two = with_exif(with_exif(jpeg, "<", [(0x0112, 3, 1, 1)]), "<", [(0x0112, 3, 1, 1)])
    assert not plain_jpeg_header(two)   # a second Exif segment: the general path decides


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xff\xd8", b"\xff\xd8\xff\xe1"]))
def test_the_header_reader_never_raises_on_any_bytes(tail, head):
    data = head + tail
    assert plain_jpeg_header(data) in (True, False)
    result = outcome(decode_plain_jpeg, data, ImageSettings())
    assert result in (None, "too_small", "bad_aspect_ratio") or isinstance(result, tuple)


def test_truncated_exif_blocks_are_refused_not_read_past_their_end(pillow_jpegs):
    data = pillow_jpegs["hopper.jpg"]
    exif = Image.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "JPEG", exif=exif.tobytes())
    good = buffer.getvalue()
    assert plain_jpeg_header(good)
    start = good.index(b"Exif\x00\x00")
    # the IFD's entry count claims more entries than the segment holds
    count_at = start + 6 + 8
    lying = good[:count_at] + b"\xff\x00" + good[count_at + 2:]
    assert not plain_jpeg_header(lying)
    # the first IFD's offset points past the segment
    offset_at = start + 6 + 4
    lying = good[:offset_at] + b"\xff\xff\x00\x00" + good[offset_at + 4:]
    assert not plain_jpeg_header(lying)
    # the plain path and OpenCV agree on the untouched file
    settings = ImageSettings()
    assert np.array_equal(decode(good, settings)[0],
                          cv2.imdecode(np.frombuffer(good, np.uint8), cv2.IMREAD_COLOR))
