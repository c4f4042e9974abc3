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

# The rules' version, recorded with the download shards that use a pHash list: a change of the bits
# (2: the DCT's rounding noise taken as zero, as imagehash's exact zeros) redoes those shards.
VERSION = "imagehash-phash-2"
HASH_SIDE = 32   # the image is reduced to 32x32 grey pixels ...
LOW_SIDE = 8     # ... and its 8x8 lowest DCT frequencies give the 64 bits
HEX_DIGITS = 16
ROUNDING = 1e-12   # DCT coefficients this small beside the zero frequency's are taken as zero
# imagehash's pHash of a picture of one tone (its DCT: the zero frequency alone), and of black
FLAT = 0x8000000000000000
BLACK = 0


@functools.lru_cache(maxsize=1)
def dct_matrix(size: int = HASH_SIDE) -> np.ndarray:
    """scipy.fftpack's DCT-II matrix (norm=None): `M @ x` transforms the columns of x."""
    k = np.arange(size)
    return 2 * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * size))


def phash_of_grey(grey: Image.Image, reducing_gap: float | None = None) -> int:
    """The pHash of a one-channel 8-bit picture (mode "L"), at any size; a `reducing_gap`
    (Pillow's resize option) trades imagehash's exact bits for speed on a large picture."""
    small = grey.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS,
                        reducing_gap=reducing_gap)
    pixels = np.asarray(small, dtype=np.float64)
    matrix = dct_matrix()[:LOW_SIDE]
    low = matrix @ pixels @ matrix.T
    # scipy's DCT gives exact zeros where the picture makes a frequency vanish (one tone, or one
    # tone along a direction); the matrix product leaves rounding noise there, some 1e-16 of the
    # zero frequency, which would set bits at random: a flat picture hashed c62929d629d6c628,
    # not imagehash's 8000000000000000. Far below it, nothing a real picture holds is lost.
    low[np.abs(low) <= ROUNDING * (abs(low[0, 0]) + 1)] = 0
    bits = (low > np.median(low)).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_of_image(image: Image.Image) -> int:
    """imagehash.phash(image) as an int: the pHash of a Pillow image in any mode."""
    return phash_of_grey(image if image.mode == "L" else image.convert("L"))


def to_hex(value: int) -> str:
    """The 16 hex digits imagehash writes for a pHash."""
    return f"{value:016x}"


BAND_BITS = 16   # the index cuts a pHash into 4 bands of 16 bits
BRUTE_FORCE_BELOW = 50_000   # smaller lists are compared whole: faster than the index's lookups


class PhashIndex:
    """pHashes (uint64), each with its distance in bits (at most 16), searched for the ones
    near a pHash: multi-index hashing. Two pHashes within d bits agree within d // 4 bits on at
    least one of their four 16-bit bands (pigeonhole), so only the entries whose band is that
    close to the query's are compared, found in a table of each band's sorted values. A list
    under BRUTE_FORCE_BELOW entries is compared whole, and so is a list with a distance of 16:
    a band then lets 15% of the list through, and gathering those costs more than comparing all
    (benchmarks/bench_blocklists.py)."""

    def __init__(self, hashes: np.ndarray, bits: np.ndarray):
        self.hashes, self.bits = hashes.astype(np.uint64), bits.astype(np.uint8)
        self.bands: list[tuple[np.ndarray, np.ndarray]] = []
        if len(self.hashes) >= BRUTE_FORCE_BELOW and int(self.bits.max()) < 16:
            reach = int(self.bits.max()) // 4
            self.neighbours = np.array([value for value in range(1 << BAND_BITS)
                                        if value.bit_count() <= reach], dtype=np.int64)
            for band in range(64 // BAND_BITS):
                keys = band_values(self.hashes, band)
                order = np.argsort(keys, kind="stable").astype(np.int32)
                starts = np.searchsorted(keys[order], np.arange((1 << BAND_BITS) + 1))
                self.bands.append((order, starts.astype(np.int32)))

    def near(self, value: int) -> bool:
        """Whether a listed pHash is within its distance of `value`."""
        if not self.bands:
            return within(self.hashes, value, self.bits)
        query = np.array([value], dtype=np.uint64)
        for band, (order, starts) in enumerate(self.bands):
            keys = int(band_values(query, band)[0]) ^ self.neighbours
            begins, ends = starts[keys], starts[keys + 1]
            lengths = ends - begins
            if not lengths.any():
                continue
            # the entries of every matching band value, gathered without a Python loop
            offsets = np.repeat(begins - np.cumsum(lengths) + lengths, lengths)
            candidates = order[offsets + np.arange(int(lengths.sum()))]
            if within(self.hashes[candidates], value, self.bits[candidates]):
                return True
        return False


def band_values(hashes: np.ndarray, band: int) -> np.ndarray:
    return ((hashes >> np.uint64(band * BAND_BITS)) & np.uint64((1 << BAND_BITS) - 1)
            ).astype(np.int64)


def within(listed: np.ndarray, value: int, bits: np.ndarray | int) -> bool:
    """Whether any of the `listed` pHashes (uint64) is at most `bits` (one for all, or one each)
    from `value` in Hamming distance."""
    if not listed.size:
        return False
    return bool((np.bitwise_count(listed ^ np.uint64(value)) <= bits).any())
