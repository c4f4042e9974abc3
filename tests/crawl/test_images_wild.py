"""Images from the wild: every format the installed Pillow decodes, pixel limits reported as
too_large, and transparency flattened on white the same way whatever the colour mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from support.hostile_web import decompression_bomb_png, image_bytes
from wit_builder.crawl.config import CrawlConfig, image_formats
from wit_builder.crawl.download.images import ImageRejected, ImageSettings, process_image

WIDTH, HEIGHT = 80, 60


def stored_pixels(data: bytes) -> np.ndarray:
    image = process_image(data, ImageSettings(min_size=8, image_size=256))
    return np.asarray(Image.open(io.BytesIO(image.jpeg)).convert("RGB")).astype(int)


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.mark.skipif(not features.check("avif"), reason="the installed Pillow has no AVIF codec")
def test_avif_is_stored_when_pillow_decodes_it():
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = (200, 30, 30)
    stored = stored_pixels(encoded(Image.fromarray(pixels), "AVIF", quality=90))
    assert stored.shape == (HEIGHT, WIDTH, 3)
    red, green, blue = stored.reshape(-1, 3).mean(axis=0)
    assert red > 170 and green < 70 and blue < 70
    assert "AVIF" in image_formats()


@pytest.mark.parametrize("fmt", ["QOI", "TGA", "JPEG2000", "ICO"])
def test_other_formats_pillow_decodes_are_stored(fmt):
    if fmt not in image_formats():
        pytest.skip(f"the installed Pillow does not decode {fmt}")
    pixels = np.full((48, 48, 3), (20, 200, 20), np.uint8)
    stored = stored_pixels(encoded(Image.fromarray(pixels), fmt))
    assert stored.shape == (48, 48, 3) and stored[..., 1].mean() > 170


def test_help_names_the_formats_and_text_is_still_not_an_image():
    help_text = CrawlConfig.__dataclass_fields__["max_bytes"].metadata["help"]
    assert "JPEG" in help_text and "PNG" in help_text and "WEBP" in help_text
    assert "EPS" not in image_formats()  # Ghostscript never runs on crawled bytes
    for body in (b"<!doctype html><p>hi</p>", b'{"a": 1}', b"\x00" * 300, bytes(range(256)) * 4):
        with pytest.raises(ImageRejected) as rejected:
            process_image(body, ImageSettings())
        assert rejected.value.status == "not_image"


def test_a_90_megapixel_image_is_too_large_not_a_decode_error():
    with pytest.raises(ImageRejected) as rejected:
        process_image(decompression_bomb_png(9500), ImageSettings())  # 90.25 Mpx
    assert rejected.value.status == "too_large" and "pixels" in str(rejected.value)
    with pytest.raises(ImageRejected) as rejected:
        process_image(image_bytes(400, 300), ImageSettings(max_pixels=100_000))
    assert rejected.value.status == "too_large"


def half_transparent(mode: str) -> tuple[bytes, str]:
    """Left half opaque red (or light grey for grey modes), right half transparent, as PNG."""
    left = np.zeros((HEIGHT, WIDTH), bool)
    left[:, : WIDTH // 2] = True
    if mode == "RGBA":
        pixels = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
        pixels[left] = (255, 0, 0, 255)
        return encoded(Image.fromarray(pixels, "RGBA"), "PNG"), "red"
    if mode == "RGB-tRNS":
        pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        pixels[left] = (255, 0, 0)
        return encoded(Image.fromarray(pixels, "RGB"), "PNG", transparency=(0, 0, 0)), "red"
    if mode == "P-tRNS":
        image = Image.fromarray(left.astype(np.uint8), "L").convert("P")
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        return encoded(image, "PNG", transparency=0), "red"
    if mode == "LA":
        grey = np.where(left, 200, 0).astype(np.uint8)
        alpha = np.where(left, 255, 0).astype(np.uint8)
        image = Image.merge("LA", (Image.fromarray(grey, "L"), Image.fromarray(alpha, "L")))
        return encoded(image, "PNG"), "grey"
    if mode == "L-tRNS":
        return encoded(Image.fromarray(np.where(left, 200, 0).astype(np.uint8), "L"), "PNG",
                       transparency=0), "grey"
    if mode == "I;16-tRNS":
        values = np.where(left, 200 * 257, 0).astype(np.uint16)
        return encoded(Image.fromarray(values), "PNG", transparency=0), "grey"
    raise ValueError(mode)


@pytest.mark.parametrize("mode", ["RGBA", "RGB-tRNS", "P-tRNS", "LA", "L-tRNS", "I;16-tRNS"])
def test_transparency_is_flattened_on_white_for_every_mode(mode):
    data, colour = half_transparent(mode)
    stored = stored_pixels(data)
    assert stored[:, WIDTH // 2 + 4:].min() >= 245, "the transparent half is white"
    opaque = stored[:, : WIDTH // 2 - 4].reshape(-1, 3).mean(axis=0)
    if colour == "red":
        assert opaque[0] > 220 and opaque[1] < 40 and opaque[2] < 40
    else:
        assert (np.abs(opaque - 200) < 8).all()


def test_ordinary_jpeg_and_png_give_the_same_bytes_as_before():
    """JPEG through OpenCV, PNG without transparency through Pillow: unchanged paths (with the
    decode they had then, `--decode fast`; the default's own bytes are checked against
    img2dataset's in test_image_quality.py)."""
    from hashlib import sha256

    digests = [sha256(process_image(image_bytes(300, 200, fmt, seed=5),
                                    ImageSettings(image_size=64, decode="fast")).jpeg
                      ).hexdigest()[:16]
               for fmt in ("JPEG", "PNG")]
    assert digests == EXPECTED_DIGESTS


# sha256 prefixes of the stored bytes before AVIF, too_large and the transparency rework.
EXPECTED_DIGESTS = ["1dbea95cb2418530", "390044c5618823b6"]
