"""64-bit perceptual hashes (DCT pHash) and the bands that let a near-duplicate search skip pairs.

The search (dedup.py) is multi-index hashing: cut the 64 bits into `max_bits + 1` bands; two hashes
within `max_bits` of each other agree exactly on at least one band (pigeonhole), so only hashes
sharing a band value are compared.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

HASH_SIDE = 32   # the image is reduced to 32x32 grey pixels ...
LOW_SIDE = 8     # ... and its 8x8 lowest DCT frequencies give the 64 bits


@functools.lru_cache(maxsize=1)
def dct_matrix(size: int = HASH_SIDE) -> np.ndarray:
    """The orthogonal DCT-II matrix: `M @ x` transforms the columns of x."""
    k = np.arange(size)
    matrix = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * size))
    matrix[0] *= 1 / np.sqrt(2)
    return matrix * np.sqrt(2 / size)


def phash(image_bytes: bytes) -> int:
    """The 64-bit pHash of an encoded image: low DCT frequencies above their median."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("L", (HASH_SIDE * 2, HASH_SIDE * 2))  # JPEG: decode at reduced scale, fast
        grey = image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    matrix = dct_matrix()
    low = (matrix @ pixels @ matrix.T)[:LOW_SIDE, :LOW_SIDE]
    bits = (low > np.median(low)).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def bands(max_bits: int) -> list[tuple[int, int]]:
    """(shift, mask) of `max_bits + 1` contiguous bit ranges covering the 64 bits."""
    count = max_bits + 1
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return [(low, (1 << (high - low)) - 1) for low, high in zip(edges, edges[1:])]
