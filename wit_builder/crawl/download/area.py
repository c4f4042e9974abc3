"""cv2.resize's INTER_AREA shrink of a BGR image, byte for byte, where OpenCV is slowest: the
compiled `_area.c` (same weights, same float sums in the same order; it only does less work), in
under half of OpenCV's time by its SSE2 path, about a fifth by its AVX2 and AVX-512 paths, which it
takes where the CPU has them (WIT_AREA_PATH=sse2 forces the SSE2 path). OpenCV keeps what it
already does fast or differently: factors that are whole numbers on both axes (its own averaging
path), enlargements, other channel counts and types. Without the compiled module (a checkout built
without a C compiler) every resize is OpenCV's.
"""

from __future__ import annotations

import numpy as np

try:
    from wit_builder.crawl.download import _area
except ImportError:  # the Python path: OpenCV for every resize (same bytes, slower)
    _area = None


def whole_factors(width: int, height: int, target_width: int, target_height: int) -> bool:
    """Whether OpenCV takes its whole-factor averaging path (its own test: each scale within
    DBL_EPSILON of the integer it rounds to)."""
    epsilon = np.finfo(float).eps
    scales = (1.0 / (target_width / width), 1.0 / (target_height / height))
    return all(abs(scale - round(scale)) < epsilon for scale in scales)


def shrink_like_opencv(array: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """`array` (height x width x 3, uint8) shrunk to `width` x `height` exactly as
    cv2.resize(..., interpolation=cv2.INTER_AREA) would; None where OpenCV's own call must run."""
    if (_area is None or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3
            or not (0 < width <= array.shape[1] and 0 < height <= array.shape[0])
            or whole_factors(array.shape[1], array.shape[0], width, height)):
        return None
    source = np.ascontiguousarray(array)
    target = np.empty((height, width, 3), np.uint8)
    _area.resize(source, source.shape[1], source.shape[0], target, width, height)
    return target
