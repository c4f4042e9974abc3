"""The 64-bit perceptual hash (pHash) as the `imagehash` package computes it, the form pHash lists
are distributed in: `str(imagehash.phash(image))`, 16 hex digits.

The picture in grey (Pillow's "L": ITU-R 601-2 luma) is resized to 32x32 with Pillow's Lanczos
filter; the 8x8 lowest frequencies of its DCT-II (unnormalised, as scipy.fftpack.dct: no extra
weight on the zero frequency) are compared with their median; the bits are read row by row, the
first one highest. Both the crawl's blocklists and the shards' near-duplicate search use it.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

HASH_SIDE = 32   # the image is reduced to 32x32 grey pixels ...
LOW_SIDE = 8     # ... and its 8x8 lowest DCT frequencies give the 64 bits
HEX_DIGITS = 16


@functools.lru_cache(maxsize=1)
def dct_matrix(size: int = HASH_SIDE) -> np.ndarray:
    """scipy.fftpack's DCT-II matrix (norm=None): `M @ x` transforms the columns of x."""
    k = np.arange(size)
    return 2 * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * size))


def phash_of_grey(grey: Image.Image) -> int:
    """The pHash of a one-channel 8-bit picture (mode "L"), at any size."""
    small = grey.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    matrix = dct_matrix()[:LOW_SIDE]
    low = matrix @ pixels @ matrix.T
    bits = (low > np.median(low)).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_of_image(image: Image.Image) -> int:
    """imagehash.phash(image) as an int: the pHash of a Pillow image in any mode."""
    return phash_of_grey(image if image.mode == "L" else image.convert("L"))


def grey_of_bgr(pixels: np.ndarray) -> Image.Image:
    """A BGR (or grey) uint8 array, as OpenCV decodes, in grey exactly as Pillow's RGB -> "L"
    conversion makes it (its fixed-point weights and rounding)."""
    if pixels.ndim == 2:
        return Image.fromarray(pixels)
    height, width = pixels.shape[:2]
    return Image.frombuffer("RGB", (width, height), np.ascontiguousarray(pixels), "raw", "BGR",
                            0, 1).convert("L")


def to_hex(value: int) -> str:
    """The 16 hex digits imagehash writes for a pHash."""
    return f"{value:016x}"


def within(listed: np.ndarray, value: int, bits: np.ndarray | int) -> bool:
    """Whether any of the `listed` pHashes (uint64) is at most `bits` (one for all, or one each)
    from `value` in Hamming distance."""
    if not listed.size:
        return False
    return bool((np.bitwise_count(listed ^ np.uint64(value)) <= bits).any())
