"""Near duplicates decided by pHash and look signature (phash.image_hashes, dedup.py): the copies
the web makes of a picture are removed, edits that make another picture are kept. Generated
pictures here; real photographs in test_neardup_real.py."""

from __future__ import annotations

import io
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from support.shards_data import encode_jpeg, render_picture
from wit_builder.shards import dedup
from wit_builder.shards.config import ShardsConfig
from wit_builder.shards.phash import MEASURES, UNMEASURED, image_hashes, same_look

PIECE = pa.schema([("uid", pa.string()), ("sha256", pa.string()), ("phash", pa.uint64()),
                   ("signature", pa.uint64()), ("raw_shard", pa.int32()),
                   ("position", pa.int32())])


def photo_like(seed: int) -> Image.Image:
    """Shapes over a smooth gradient, with fine grain: edges and texture a blur can take away."""
    rng = random.Random(seed)
    picture = np.asarray(render_picture(rng, 256, noise=False), dtype=np.float64)
    ramp = np.linspace(-40, 40, 256)
    grain = np.random.default_rng(seed).normal(0, 12, picture.shape)
    pixels = picture * 0.8 + ramp[None, :, None] + ramp[:, None, None] * 0.5 + grain + 20
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((384, 256))


def encode(picture: Image.Image, format: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, format, **options)
    return out.getvalue()


def stored(picture: Image.Image, **options) -> bytes:
    """As the crawl stores it: at most 256 px, JPEG at quality 90."""
    picture = picture.copy()
    picture.thumbnail((256, 256), Image.Resampling.LANCZOS)
    return encode_jpeg(picture, **options)


COPIES = {
    "recompressed at quality 35": lambda p: stored(p, quality=35),
    "rescaled to 60%": lambda p: stored(p.resize((230, 154), Image.Resampling.BILINEAR)),
    "cropped 1% each side": lambda p: stored(p.crop((4, 3, 380, 253))),
    "via PNG": lambda p: stored(Image.open(io.BytesIO(encode(p, "PNG")))),
}
EDITS = {
    "blurred": lambda p: stored(p.filter(ImageFilter.GaussianBlur(4))),
    "sharpened": lambda p: stored(p.filter(ImageFilter.UnsharpMask(4, 250, 0))),
    "greyscale": lambda p: stored(p.convert("L").convert("RGB")),
    "sepia": lambda p: stored(Image.merge("RGB", [
        p.convert("L").point(lambda v, k=k: min(255, int(v * k + 20)))
        for k in (1.07, 0.74, 0.43)])),
    "warm filter": lambda p: stored(Image.fromarray(np.clip(
        np.asarray(p, dtype=np.float64) * (1.2, 1.0, 0.7), 0, 255).astype(np.uint8))),
    "darker": lambda p: stored(ImageEnhance.Brightness(p).enhance(0.65)),
    "more contrast": lambda p: stored(ImageEnhance.Contrast(p).enhance(1.6)),
}


def removals_of(tmp_path, images: list[tuple[str, bytes]], bits: int, check: bool = True
                ) -> dict[str, str]:
    """{removed uid: the uid it duplicates} when `images` are one raw shard, in order."""
    rows = []
    for position, (uid, data) in enumerate(images):
        value, signature = image_hashes(data)
        rows.append({"uid": uid, "sha256": f"{position:064x}", "phash": value,
                     "signature": signature, "raw_shard": 0, "position": position})
    path = tmp_path / "00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PIECE), path)
    plan = dedup.plan_dedup(tmp_path / "work", {0: len(rows)}, bits, 64, near_dup_check=check)
    dedup.deduplicate(plan, [(str(path), len(rows))], progress=False)
    return {row["uid"]: row["duplicate_of"] for table in dedup.removals(plan)
            for row in table.to_pylist()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_web_copies_are_removed_and_edits_kept_at_the_default_bits(tmp_path, seed):
    picture = photo_like(seed)
    images = [("original", stored(picture))]
    images += [(name, make(picture)) for name, make in {**COPIES, **EDITS}.items()]
    removed = removals_of(tmp_path, images, ShardsConfig().near_dup_bits)
    assert {name for name in removed if removed[name] == "original"} == set(COPIES)
    assert not set(EDITS) & set(removed)


def test_edits_are_within_the_bits_of_the_pictures_they_came_from(tmp_path):
    """Why a second check: the pHash alone puts the edits as close as the copies."""
    picture = photo_like(4)
    images = [("original", stored(picture))]
    images += [(name, make(picture)) for name, make in {**COPIES, **EDITS}.items()]
    removed = removals_of(tmp_path, images, ShardsConfig().near_dup_bits, check=False)
    assert set(COPIES) | {"blurred", "greyscale", "sepia", "darker"} <= set(removed)


def test_greyscale_copy_with_the_same_phash_is_no_identical_hash_follower(tmp_path):
    """A greyscale edit often has the very pHash of its colour original (the hash sees grey
    only): equal hashes with different looks are compared, not taken as one."""
    picture = photo_like(5)
    colour, grey = stored(picture), stored(picture.convert("L").convert("RGB"))
    assert image_hashes(colour)[1] != image_hashes(grey)[1]
    images = [("colour", colour), ("grey", grey), ("grey again", grey + b"\0"),
              ("colour again", encode_jpeg(Image.open(io.BytesIO(colour)), quality=60))]
    removed = removals_of(tmp_path, images, 4)
    assert removed == {"grey again": "grey", "colour again": "colour"}


def test_signature_bytes_follow_the_measures_and_small_pictures_skip_sharpness():
    large = image_hashes(stored(photo_like(6)))[1]
    small = image_hashes(stored(photo_like(6).resize((96, 64))))[1]
    assert large & 0xFF == 0 and len(MEASURES) == 7  # the low byte is spare
    assert large >> 56 != UNMEASURED and small >> 56 == UNMEASURED
    # Unmeasured sharpness is not compared; the other measures still are.
    pairs = np.array([large, small, large], np.uint64), np.array([small, large, 0], np.uint64)
    assert same_look(*pairs).tolist() == [True, True, False]


def test_check_off_ignores_signatures(tmp_path):
    picture = photo_like(7)
    images = [("original", stored(picture)),
              ("greyscale", stored(picture.convert("L").convert("RGB")))]
    assert removals_of(tmp_path, images, 4, check=False) == {"greyscale": "original"}
    assert removals_of(tmp_path, images, 4, check=True) == {}
