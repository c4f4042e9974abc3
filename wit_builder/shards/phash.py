"""64-bit perceptual hashes (DCT pHash), the look signature that confirms a near pair, and the
bands that let a near-duplicate search skip pairs.

The pHash is imagehash's (core/phash.py, which the crawl's pHash blocklists use too), taken on
the Y plane of the reduced decode the signature is measured on. It replaced an orthonormal DCT
(the zero frequency weighted down) at no cost in near-duplicate precision or recall: within
0.015 at every threshold, equal at the default 4 bits (benchmarks/bench_neardup.py).

The search (dedup.py) is multi-index hashing: cut the 64 bits into `max_bits + 1` bands; two hashes
within `max_bits` of each other agree exactly on at least one band (pigeonhole), so only hashes
sharing a band value are compared.

The pHash sees only the layout of light and dark: a blurred, sharpened, greyscale, sepia, darker
or colour-filtered edit of a photograph hashes within 2-4 bits of it, as close as a recompressed
copy (measured on real photographs: benchmarks/bench_neardup.py). The signature packs what the
web's copies keep and those edits change into 8 bytes: sharpness, brightness, contrast, the
mean colour and how colourful the picture is, measured at 128 pixels. A pair within the bits is a
duplicate only when every measure agrees within its tolerance (`same_look`), a check made on
candidate pairs only.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wit_builder.core import phash as core_phash

LOOK_SIDE = 128  # the signature is measured with the longest side at 128 pixels


@dataclass(frozen=True)
class Measure:
    """One byte of the signature: round((value - offset) * scale), clipped to 0..254 (255 is
    "not measured"), and the largest difference two copies of one picture show."""
    name: str
    offset: float
    scale: float
    tolerance: float  # in the measure's units, calibrated on real photographs

    def units(self) -> int:
        return round(self.tolerance * self.scale)


# Tolerances: above what the web's copies of real photographs differ by (JPEG at quality 30,
# rescale, thumbnail, crop of a few %, PNG, WebP), below what the edits change (the table in
# BENCHMARKS.md). Dark pictures damp the colour measures, as an edit barely changes them.
MEASURES = (
    Measure("sharpness", -8.0, 16.0, 0.7),  # log2(mean |Laplacian| / grey std): blur, sharpen
    Measure("brightness", 3.0, 50.0, 0.2),   # log2(mean grey + 8)
    Measure("contrast", 2.0, 50.0, 0.35),    # log2(grey std + 4)
    Measure("red share", 0.0, 2.5, 2.2),     # % of red in the mean colour: colour filters
    Measure("blue share", 0.0, 2.5, 2.2),    # % of blue
    Measure("saturation", 0.0, 2.0, 3.0),    # mean chroma / (mean grey + 32), %: greyscale
    Measure("colour peak", 0.0, 1.0, 8.0),   # mean chroma of the most colourful quarter
)
UNMEASURED = 255


def decoded(image_bytes: bytes) -> Image.Image:
    """The image in YCbCr with its longest side at most LOOK_SIDE, from which both hashes are
    taken (a JPEG is decoded at reduced scale and left in YCbCr: no colour conversion)."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        width, height = image.size
        scale = min(1.0, LOOK_SIDE / max(width, height, 1))
        size = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
        image.draft("YCbCr", size)
        ycc = image.convert("RGB").convert("YCbCr") if image.mode != "YCbCr" else image.copy()
    return ycc if ycc.size == size else ycc.resize(size, Image.Resampling.BOX)


def phash(image_bytes: bytes) -> int:
    """The 64-bit pHash of an encoded image."""
    return phash_of(decoded(image_bytes))


def phash_of(ycc: Image.Image) -> int:
    """The pHash of a decoded image (its Y plane)."""
    return core_phash.phash_of_grey(ycc.getchannel(0))


def image_hashes(image_bytes: bytes) -> tuple[int, int]:
    """(pHash, look signature) of an encoded image, decoded once."""
    ycc = decoded(image_bytes)
    return phash_of(ycc), signature_of(ycc)


def signature_of(ycc: Image.Image) -> int:
    """The 8-byte look signature of a decoded image: MEASURES in order from the high byte,
    then a spare zero byte."""
    values: list[float | None] = list(look_measures(ycc))
    if max(ycc.size) < LOOK_SIDE:  # a small thumbnail's sharpness says nothing of the original's
        values[0] = None
    signature = 0
    for measure, value in zip(MEASURES, values):
        byte = UNMEASURED if value is None else \
            min(254, max(0, round((value - measure.offset) * measure.scale)))
        signature = signature << 8 | byte
    return signature << 8 * (8 - len(MEASURES))


def look_measures(ycc: Image.Image) -> list[float]:
    """The MEASURES of a YCbCr picture, in their units: grey ones at its size, colour ones at
    half of it (a quarter of the work; colour needs no detail)."""
    grey = np.asarray(ycc.getchannel(0), dtype=np.float32)
    laplacian = 4 * grey[1:-1, 1:-1] - (grey[:-2, 1:-1] + grey[2:, 1:-1]
                                        + grey[1:-1, :-2] + grey[1:-1, 2:])
    detail = float(np.abs(laplacian).mean()) if laplacian.size else 0.0
    mean, spread = float(grey.mean()), float(grey.std())
    half = ycc.reduce(2) if min(ycc.size) >= 8 else ycc
    _, blue_diff, red_diff = (np.asarray(plane, dtype=np.float32) - 128 for plane in half.split())
    chroma = np.sqrt(blue_diff * blue_diff + red_diff * red_diff).ravel()
    # The mean colour from the mean Y, Cb, Cr (JFIF's inverse is linear).
    cb, cr = float(blue_diff.mean()), float(red_diff.mean())
    red, blue = mean + 1.402 * cr, mean + 1.772 * cb
    green = mean - 0.344136 * cb - 0.714136 * cr
    colour_total = max(red + green + blue, 0.0) + 96  # damped: a dark picture's colour is noise
    # The mean chroma of the most colourful quarter of the pixels (a mean, not a percentile: a
    # picture of a few flat colours would jump from one to the next).
    quarter = chroma.size * 3 // 4
    peak = float(np.partition(chroma, quarter)[quarter:].mean())
    return [math.log2(detail + 0.1) - math.log2(spread + 1), math.log2(mean + 8),
            math.log2(spread + 4), 100 * red / colour_total, 100 * blue / colour_total,
            100 * float(chroma.mean()) / (mean + 32), peak]


def same_look(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair of signatures (uint64 arrays), whether every measure agrees within its
    tolerance (a measure either side did not take is not compared)."""
    first, second = first.astype(np.uint64), second.astype(np.uint64)
    agree = np.ones(first.shape, dtype=bool)
    for number, measure in enumerate(MEASURES):
        shift = np.uint64(8 * (7 - number))
        a = ((first >> shift) & np.uint64(0xFF)).astype(np.int16)
        b = ((second >> shift) & np.uint64(0xFF)).astype(np.int16)
        unmeasured = (a == UNMEASURED) | (b == UNMEASURED)
        agree &= unmeasured | (np.abs(a - b) <= measure.units())
    return agree


def bands(max_bits: int) -> list[tuple[int, int]]:
    """(shift, mask) of `max_bits + 1` contiguous bit ranges covering the 64 bits."""
    count = max_bits + 1
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return [(low, (1 << (high - low)) - 1) for low, high in zip(edges, edges[1:])]
