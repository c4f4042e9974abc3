"""Near duplicates on real photographs (Debian's wallpaper packages, fetched by support.realdata;
skipped without network): the copies the web makes are found at the
default settings, blurred and greyscale edits are not. The full table: bench_neardup.py."""

from __future__ import annotations

import numpy as np
import pytest

from support import photos
from support.realdata import Unavailable
from wit_builder.crawl.download.images import ImageSettings, process_image
from wit_builder.shards.config import ShardsConfig
from wit_builder.shards.phash import image_hashes, same_look


@pytest.fixture(scope="module")
def hashed():
    """{photo: {variant: (pHash, signature)}} of the wallpaper photographs, each variant stored
    by the crawl's image step."""
    try:
        pictures = photos.photographs(photos.WALLPAPERS)
    except Unavailable as error:
        pytest.skip(str(error))
    found = {}
    for name, picture in pictures.items():
        variants = {"original": photos.encode(picture, quality=95),
                    **{label: make(picture) for label, make in photos.COPIES.items()},
                    **{label: photos.EDITS[label](picture)
                       for label in ("blur 1%", "blur 2%", "greyscale")}}
        found[name] = {label: image_hashes(process_image(data, ImageSettings()).jpeg)
                       for label, data in variants.items()}
    return found


def duplicates(hashed: dict, label: str, check: bool = True) -> np.ndarray:
    """Whether each photograph's `label` variant counts as a duplicate of it by default (or by
    the pHash alone)."""
    bits = ShardsConfig().near_dup_bits
    pairs = [(entry["original"], entry[label]) for entry in hashed.values()]
    first, second = (np.array(side, dtype=np.uint64).T for side in zip(*pairs))
    close = np.bitwise_count(first[0] ^ second[0]) <= bits
    return close & same_look(first[1], second[1]) if check else close


def test_web_copies_of_real_photographs_are_found(hashed):
    """Every copy the pHash finds, the look check confirms; crops of 2-5% are often beyond the
    default bits (bench_neardup.py: a wider search costs too much), the others are found."""
    assert len(hashed) >= 35
    for label in photos.COPIES:
        alone, checked = duplicates(hashed, label, check=False), duplicates(hashed, label)
        assert (alone & ~checked).sum() <= 1, label
        if not label.startswith("crop"):
            assert checked.mean() >= 0.97, (label, checked.mean())


def test_blurred_and_greyscale_real_photographs_are_kept(hashed):
    """The pHash alone takes each of these for a copy; the default keeps at least 90%."""
    colour = {name: entry for name, entry in hashed.items()
              if name.split("/")[1] not in ("ColdRipple", "Grey")}  # black-and-white photographs
    kept = {label: 1 - duplicates(hashed, label).mean() for label in ("blur 1%", "blur 2%")}
    kept["greyscale"] = 1 - duplicates(colour, "greyscale").mean()
    assert min(kept.values()) >= 0.9, kept
    assert duplicates(hashed, "blur 1%", check=False).mean() >= 0.9
