"""Downloaded bytes → a stored image: sniff the format, check the size, decode (at reduced scale
when the target is much smaller), fix orientation and colour mode, resize, re-encode as JPEG.

Most web images are whole YCbCr or grey JPEGs with no EXIF rotation: those go through simplejpeg
(libjpeg-turbo's TurboJPEG API, the GIL released), header and pixels, without Pillow: its pixels are
OpenCV's byte for byte, ~0.13 CPU ms an image less (`decode_plain_jpeg`). A JPEG with an EXIF
orientation other than 1, or a multi-picture file, goes through OpenCV's reduced decode (it applies
the orientation itself); every other format, and any JPEG that is CMYK, truncated or odd, goes
through Pillow, which handles the colour modes (CMYK, palette, alpha, 16-bit) explicitly.
Pixels stay in OpenCV's BGR order from decode to encode: no colour conversion on the JPEG path.

The output matches img2dataset's: the same size for each resize mode (its arithmetic, rounding
included: `scaled_size`), and a quality against a full decode within 0.2 dB of its full decode
(`ImageSettings.decode`; tests/crawl/test_image_quality.py, BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from wit_builder.crawl.config import image_formats
from wit_builder.crawl.download.area import shrink_like_opencv
from wit_builder.crawl.download.safety import NsfwRejected, SafetySettings, check_image

MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
JPEG_END = b"\xff\xd9"
# JPEG markers: start of scan, and the frame headers (SOF0-15 but DHT, JPG and DAC)
SOS, FRAMES = 0xDA, frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
ORIENTATION = 0x0112   # the EXIF tag
# img2dataset's name for our keep_ratio (its own keep_ratio bounds the shortest side instead).
RESIZE_ALIASES = {"keep_ratio_largest": "keep_ratio"}
# How large a JPEG is decoded, as the least multiple of the output size the DCT-scaled decode
# (1/2, 1/4, 1/8) must leave. "reduced": twice the output, then INTER_AREA: PSNR against a full
# decode equal to img2dataset's (which decodes in full) at the cost of the 1× decode. "fast": the
# output size itself, ~0.5 dB lower (the DCT's scaling is a coarser filter than INTER_AREA over
# 2+ pixels). "full": no reduced decode.
DECODE_HEADROOM = {"reduced": 2.0, "fast": 1.0, "full": float("inf")}


class ImageRejected(Exception):
    """An image that is not stored; `status` is its manifest status (DESIGN.md)."""

    def __init__(self, status: str, message: str, nsfw_score: float | None = None):
        super().__init__(message)
        self.status = status
        self.nsfw_score = nsfw_score   # the score of an image dropped as nsfw


@dataclass(frozen=True)
class ImageSettings:
    image_size: int = 256
    resize_mode: str = "keep_ratio"
    min_size: int = 32
    max_aspect_ratio: float = 3.0
    quality: int = 90
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    decode: str = "reduced"
    safety: SafetySettings = SafetySettings()   # --blur-faces, --nsfw-threshold (safety.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize_mode", canonical_resize_mode(self.resize_mode))
        if self.decode not in DECODE_HEADROOM:
            raise ValueError(f"decode must be one of {', '.join(DECODE_HEADROOM)}, "
                             f"not {self.decode!r}")


def canonical_resize_mode(mode: str) -> str:
    """Our name of a resize mode: `keep_ratio_largest` is `keep_ratio` (the longest side)."""
    return RESIZE_ALIASES.get(mode, mode)


@dataclass(frozen=True)
class StoredImage:
    jpeg: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    face_boxes: list[list[float]] | None = None   # normalised, blurred (None: not looked for)
    nsfw_score: float | None = None               # None: not scored


def sniff_format(data: bytes) -> str | None:
    """The image format told by the magic bytes (never by Content-Type), or None."""
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_header(data: bytes) -> Image.Image:
    """Read only the header (size, mode); decoding happens later, after the checks. Any format
    the installed Pillow decodes (image_formats()); bytes none of them reads are not_image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=image_formats())
    except Image.DecompressionBombError as error:
        raise ImageRejected("decode_error", f"decompression bomb: {error}") from None
    except Image.UnidentifiedImageError as error:
        if sniff_format(data) is None:
            raise ImageRejected("not_image", "content is no image format Pillow decodes") from None
        raise ImageRejected("decode_error", f"unreadable image header: {error}") from None
    except Exception as error:  # Pillow raises many types for garbage headers
        raise ImageRejected("decode_error", f"unreadable image header: {error}") from None


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed: EXIF orientations 5-8 swap the axes."""
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_dimensions(width: int, height: int, settings: ImageSettings) -> None:
    if width * height > settings.max_pixels:
        raise ImageRejected("too_large", f"{width}x{height} pixels exceed {settings.max_pixels}")
    if min(width, height) < settings.min_size:
        raise ImageRejected("too_small", f"{width}x{height} is smaller than {settings.min_size}")
    if max(width, height) / min(width, height) > settings.max_aspect_ratio:
        raise ImageRejected("bad_aspect_ratio", f"aspect ratio of {width}x{height} exceeds "
                                         f"{settings.max_aspect_ratio}")


def scaled_size(width: int, height: int, settings: ImageSettings) -> tuple[int, int]:
    """The size an image of `width` × `height` (as displayed) is resized to, before center_crop's
    crop or border's padding. img2dataset's arithmetic, reimplemented (img2dataset/resizer.py,
    `Resizer.__call__`, with albumentations' SmallestMaxSize / LongestMaxSize): scale = image_size
    / the shortest side (center_crop) or the longest (keep_ratio, border), each side
    max(1, round(side * scale)) with Python's round; keep_ratio only when the longest side exceeds
    image_size (the backend's resize_only_if_bigger). Always from the original size, never from a
    reduced decode's, whose rounded-up sides would move the result by a pixel."""
    size, mode = settings.image_size, settings.resize_mode
    if mode == "no" or (mode == "keep_ratio" and max(width, height) <= size):
        return width, height
    scale = size / (min(width, height) if mode == "center_crop" else max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def reduction_factor(width: int, height: int, settings: ImageSettings) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that still leaves `settings.decode`'s multiple of
    the output size."""
    target_width, target_height = scaled_size(width, height, settings)
    scale = max(target_width / width, target_height / height) * DECODE_HEADROOM[settings.decode]
    for factor in (8, 4, 2):
        if scale * factor <= 1.0:
            return factor
    return 1


def decode_with_opencv(data: bytes, factor: int) -> np.ndarray | None:
    """BGR array of a JPEG decoded at 1/factor scale, or None when OpenCV cannot."""
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: 16-bit scaled down, CMYK and palettes converted, and every
    transparency (alpha channel, a palette's or a grey or RGB image's transparent colour, 16-bit
    included) composited on white the same way."""
    transparency = image.info.get("transparency")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image).astype(np.uint32)
        high = 65535 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255
        grey = Image.fromarray((values * 255 // max(high, 1)).clip(0, 255).astype(np.uint8), "L")
        if not isinstance(transparency, int):
            return grey.convert("RGB")
        alpha = Image.fromarray(np.where(values == transparency, 0, 255).astype(np.uint8), "L")
        image = Image.merge("LA", (grey, alpha))
    elif image.mode in ("P", "L", "1", "RGB") and transparency is not None:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def decode_with_pillow(image: Image.Image, factor: int) -> np.ndarray:
    """BGR array of any format Pillow reads (first frame of animations), EXIF-oriented; a JPEG
    at 1/factor scale or more."""
    if image.format == "JPEG" and factor > 1:
        width, height = image.size
        image.draft("RGB", (max(1, width // factor), max(1, height // factor)))
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return cv2.cvtColor(np.asarray(to_rgb(image)), cv2.COLOR_RGB2BGR)
    except Exception as error:
        raise ImageRejected("decode_error", f"cannot decode: {error}") from None


def resize_array(array: np.ndarray, settings: ImageSettings, width: int, height: int
                 ) -> np.ndarray:
    """Resize like img2dataset's modes (`scaled_size` of the original `width` × `height`, then
    center_crop's central square or border's white padding); keep_ratio bounds the longest side
    and never enlarges."""
    size = settings.image_size
    array = scale_to(array, *scaled_size(width, height, settings))
    height, width = array.shape[:2]
    if settings.resize_mode == "center_crop":  # albumentations' CenterCrop: offsets rounded down
        top, left = (height - size) // 2, (width - size) // 2
        return array[top:top + size, left:left + size]
    if settings.resize_mode == "border":  # albumentations' PadIfNeeded: the odd pixel after
        top, left = (size - height) // 2, (size - width) // 2
        array = cv2.copyMakeBorder(array, top, size - height - top, left, size - width - left,
                                   cv2.BORDER_CONSTANT, value=(255, 255, 255))
    return array


def scale_to(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """`array` resized to `width` × `height` with img2dataset's default filters: INTER_AREA to
    shrink, Lanczos to enlarge."""
    if (width, height) == (array.shape[1], array.shape[0]):
        return array
    shrinking = width < array.shape[1]
    if shrinking and (shrunk := shrink_like_opencv(array, width, height)) is not None:
        return shrunk  # OpenCV's INTER_AREA bytes, compiled faster (area.py)
    return cv2.resize(array, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def encode_jpeg(array: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageRejected("decode_error", "JPEG encoding failed")
    return encoded.tobytes()


def plain_jpeg_header(data: bytes) -> bool:
    """Whether a JPEG's header segments (up to its first scan) hold no EXIF rotation (no EXIF,
    or orientation 1 in the first APP1 "Exif" segment's first IFD, where Pillow and OpenCV read
    it) and no multi-picture index (APP2 "MPF", which Pillow opens as MPO). False for anything
    this short reader does not follow exactly: the caller then takes the general path."""
    position, end, exif_seen = 2, len(data), False
    while position + 4 <= end:
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:          # fill byte
            position += 1
            continue
        if marker == SOS or marker in FRAMES:
            return True
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:   # no length: RSTn, SOI, TEM
            position += 2
            continue
        length = (data[position + 2] << 8) | data[position + 3]
        if length < 2 or position + 2 + length > end:
            return False
        segment = data[position + 4:position + 2 + length]
        if marker == 0xE2 and segment.startswith(b"MPF\x00"):
            return False
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            if exif_seen or not exif_orientation_is_plain(segment[6:]):
                return False
            exif_seen = True
        position += 2 + length
    return False


def exif_orientation_is_plain(tiff: bytes) -> bool:
    """Whether a TIFF block's first IFD has no orientation tag or orientation 1 (SHORT)."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return False
    order = "<" if tiff[0] == 0x49 else ">"
    offset = struct.unpack_from(order + "I", tiff, 4)[0]
    if offset + 2 > len(tiff):
        return False
    count = struct.unpack_from(order + "H", tiff, offset)[0]
    if offset + 2 + 12 * count > len(tiff):
        return False
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", tiff, entry)
        if tag == ORIENTATION:
            return kind == 3 and values == 1 and \
                struct.unpack_from(order + "H", tiff, entry + 8)[0] == 1
    return True


def decode_plain_jpeg(data: bytes, settings: ImageSettings
                      ) -> tuple[np.ndarray, int, int] | None:
    """`decode` for a whole YCbCr or grey JPEG whose header `plain_jpeg_header` follows, with
    simplejpeg: the same pixels as OpenCV's reduced decode (both libjpeg-turbo's islow IDCT and
    fancy upsampling; tests/crawl/test_jpeg_fast_path.py), without Pillow's header parse. None
    for any other bytes, and for sizes the checks reject: the general path then decides, so
    every status stays what it was."""
    if not data.startswith(b"\xff\xd8\xff") or JPEG_END not in data[-4096:] \
            or not plain_jpeg_header(data):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("YCbCr", "Gray") or width * height > settings.max_pixels \
            or not width or not height:
        return None
    check_dimensions(width, height, settings)
    factor = reduction_factor(width, height, settings)
    sides = (-(-height // factor), -(-width // factor))   # DCT scaling rounds up, as OpenCV's
    try:  # the smallest of libjpeg-turbo's scales (n/8) leaving these sides
        array = simplejpeg.decode_jpeg(data, "BGR", min_height=sides[0], min_width=sides[1])
    except ValueError:
        return None
    # n/8 other than 1/factor (a side of a few pixels) would be other pixels than OpenCV's
    return (array, width, height) if array.shape[:2] == sides else None


def decode(data: bytes, settings: ImageSettings) -> tuple[np.ndarray, int, int]:
    """(BGR array, original width, original height) after the format and size checks."""
    if (plain := decode_plain_jpeg(data, settings)) is not None:
        return plain
    image = open_header(data)
    width, height = oriented_size(image)
    check_dimensions(width, height, settings)
    factor = reduction_factor(width, height, settings)
    fast = image.format == "JPEG" and image.mode in ("RGB", "L") and JPEG_END in data[-4096:]
    array = decode_with_opencv(data, factor) if fast else None
    if array is None:
        array = decode_with_pillow(image, factor)
    return array, width, height


def process_image(data: bytes, settings: ImageSettings,
                  blocked: Callable[[np.ndarray], bool] | None = None) -> StoredImage:
    """The stored form of downloaded bytes, or ImageRejected with the status to record;
    `blocked` sees the decoded picture (BGR, before the resize): True drops it (blocked_hash)."""
    array, width, height = decode(data, settings)
    if blocked is not None and blocked(array):
        raise ImageRejected("blocked_hash", "near a pHash on a --block-hashes list")
    array = resize_array(array, settings, width, height)
    if not settings.safety:
        return StoredImage(encode_jpeg(array, settings.quality), array.shape[1], array.shape[0],
                           width, height)
    try:  # on the resized image, before it is encoded
        checked = check_image(array, settings.safety)
    except NsfwRejected as rejected:
        raise ImageRejected("nsfw", str(rejected), rejected.score) from None
    return StoredImage(encode_jpeg(checked.bgr, settings.quality), array.shape[1],
                       array.shape[0], width, height, checked.face_boxes, checked.nsfw_score)
