"""The compiled INTER_AREA shrink (crawl/download/_area.c) gives cv2.resize's bytes: on generated
images of many sizes and on the real photographs of Pillow 11.0.0's test images, through the
function the image step calls (images.scale_to), by each of its code paths (SSE2, AVX2, AVX-512;
those the CPU lacks skipped, saying so); OpenCV keeps the cases it computes otherwise."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import types
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from wit_builder.crawl.download import area
from wit_builder.crawl.download.images import scale_to

pytestmark = pytest.mark.skipif(area._area is None, reason="crawl/download/_area.c is not built "
                                "(python setup.py build_ext --inplace)")

PATHS = ("scalar", "sse2", "avx2", "avx512")   # scalar: a build without SSE2
PHOTOGRAPHS = ("exif-72dpi-int.jpg", "flower.jpg", "flower2.jpg", "frozenpond.mpo",
               "fujifilm.mpo", "iptc.jpg", "sugarshack.mpo", "xmp_test.jpg")


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each code path of _area.c in turn, as the one every resize of the image step takes."""
    if request.param not in area._area.paths():
        pytest.skip(f"no {request.param} path here (this build and CPU run "
                    f"{', '.join(area._area.paths())}; scalar is the path of builds without SSE2)")
    compiled, name = area._area, request.param
    monkeypatch.setattr(area, "_area", types.SimpleNamespace(
        resize=lambda *args: compiled.resize(*args, name), paths=compiled.paths))
    return name


def opencv_area(array: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)


def opencv_scale_to(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """scale_to as it was, all OpenCV: INTER_AREA when the width shrinks, else Lanczos."""
    if (width, height) == (array.shape[1], array.shape[0]):
        return array
    shrinking = width < array.shape[1]
    return cv2.resize(array, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def generated(width: int, height: int, rng: np.random.Generator, kind: int) -> np.ndarray:
    """Noise, a smooth gradient or flat extremes (the sums' rounding at 0 and 255)."""
    if kind == 0:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == 1:
        y, x = np.mgrid[0:height, 0:width]
        gradient = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                             (x + y) % 256], axis=2)
        return gradient.astype(np.uint8)
    return np.full((height, width, 3), 255 * (kind % 2), np.uint8)


def test_shrink_gives_opencvs_bytes_on_generated_sizes(path: str):
    rng, pick = np.random.default_rng(7), random.Random(7)
    compiled = 0
    for case in range(1500):
        width, height = pick.randint(1, 300), pick.randint(1, 300)
        target_width, target_height = pick.randint(1, width), pick.randint(1, height)
        if case % 7 == 0:  # one axis kept, or whole factors: OpenCV's other paths
            target_width = width if case % 2 else max(1, width // 2)
        image = generated(width, height, rng, case % 4)
        ours = scale_to(image, target_width, target_height)
        expected = opencv_scale_to(image, target_width, target_height)
        assert ours.shape == expected.shape and np.array_equal(ours, expected), \
            (width, height, target_width, target_height)
        shrunk = area.shrink_like_opencv(image, target_width, target_height)
        if shrunk is not None:
            compiled += 1
            assert np.array_equal(shrunk, opencv_area(image, target_width, target_height))
    assert compiled > 1000  # the compiled path, not OpenCV, gave most of them


def test_shrink_gives_opencvs_bytes_on_real_photographs(real_sdist, path: str):
    images = real_sdist("pillow", "11.0.0") / "Tests" / "images"
    pick = random.Random(3)
    for name in PHOTOGRAPHS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(images / name) as picture:
                bgr = cv2.cvtColor(np.asarray(picture.convert("RGB")), cv2.COLOR_RGB2BGR)
        height, width = bgr.shape[:2]
        sizes = [(max(1, round(width * 256 / max(width, height))),
                  max(1, round(height * 256 / max(width, height))))]
        sizes += [(pick.randint(1, width), pick.randint(1, height)) for _ in range(20)]
        for target_width, target_height in sizes:
            assert np.array_equal(scale_to(bgr, target_width, target_height),
                                  opencv_scale_to(bgr, target_width, target_height)), \
                (name, target_width, target_height)


def test_opencv_keeps_whole_factors_enlargements_and_other_layouts(path: str):
    image = np.zeros((40, 60, 3), np.uint8)
    assert area.shrink_like_opencv(image, 30, 20) is None      # 2x2: OpenCV's averaging
    assert area.shrink_like_opencv(image, 60, 40) is None      # 1x1
    assert area.shrink_like_opencv(image, 61, 20) is None      # wider: not a shrink
    assert area.shrink_like_opencv(image[:, :, 0], 25, 15) is None  # one channel
    assert area.shrink_like_opencv(image.astype(np.float32), 25, 15) is None
    assert area.shrink_like_opencv(image, 25, 15) is not None
    # a view that is not contiguous (a crop) is shrunk from its own pixels
    crop = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)[5:45, 3:63]
    assert np.array_equal(area.shrink_like_opencv(crop, 25, 15), opencv_area(crop, 25, 15))


def test_each_path_gives_the_same_bytes_on_narrow_and_wide_rows():
    """Widths around the wide paths' 4-pixel groups and 16-byte loads, heights around their
    4-row blocks, output widths around their 4-pixel stores: every path, cv2's bytes."""
    rng = np.random.default_rng(11)
    for width in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, 33, 64, 65):
        for height in (1, 2, 3, 4, 5, 7, 9):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for target_width in sorted({1, max(1, width - 1), max(1, width * 2 // 3), width}):
                for target_height in sorted({1, max(1, height - 1), height}):
                    if area.whole_factors(width, height, target_width, target_height):
                        continue
                    expected = opencv_area(image, target_width, target_height)
                    for name in area._area.paths():
                        out = np.empty((target_height, target_width, 3), np.uint8)
                        area._area.resize(image, width, height, out, target_width, target_height,
                                          name)
                        assert np.array_equal(out, expected.reshape(out.shape)), \
                            (name, width, height, target_width, target_height)


def test_the_path_is_the_fastest_unless_forced():
    paths = area._area.paths()
    assert paths[0] in ("sse2", "scalar") and set(paths) <= set(PATHS)
    assert area._area.default_path() == paths[-1] or os.environ.get("WIT_AREA_PATH")
    image, out = np.zeros((9, 9, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="path avx9 is not one this CPU runs"):
        area._area.resize(image, 9, 9, out, 5, 5, "avx9")
    script = "from wit_builder.crawl.download import area; print(area._area.default_path())"
    for name in paths:  # WIT_AREA_PATH (read at import) picks the default
        forced = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                env={**os.environ, "WIT_AREA_PATH": name}, check=True)
        assert forced.stdout.strip() == name
    wrong = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "WIT_AREA_PATH": "avx9"})
    assert wrong.returncode != 0 and "WIT_AREA_PATH=avx9 is not a code path" in wrong.stderr
