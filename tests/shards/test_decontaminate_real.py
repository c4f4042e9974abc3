"""Decontamination on real photographs (Debian's wallpaper packages, fetched by
support.realdata; skipped without network): an evaluation set of real photos, and a training
index holding their web copies (half size, recompressed, through the crawl's image step), two
byte-identical downloads, and the other photos: every exact copy is named at distance 0, the web
copies are found, no other photo is taken for a copy."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import photos
from support.realdata import Unavailable
from wit_builder.crawl.download.images import ImageSettings, process_image
from wit_builder.shards.decontaminate import contaminated, hash_sets
from wit_builder.shards.phash import image_hashes

EVAL_PHOTOS = 12


def test_copies_of_real_evaluation_photos_are_found_and_no_other_photo(tmp_path):
    try:
        pictures = photos.photographs(photos.WALLPAPERS)
    except Unavailable as error:
        pytest.skip(str(error))
    names = sorted(pictures)
    assert len(names) > EVAL_PHOTOS + 10
    folder = tmp_path / "evalset"
    folder.mkdir()
    rows, expected_exact, expected_copies, others = [], {}, set(), set()
    for position, name in enumerate(names):
        original = photos.encode(pictures[name], quality=95)
        if position < EVAL_PHOTOS:
            file = name.replace("/", "_") + ".jpg"
            (folder / file).write_bytes(original)
            # two downloads of the very file, the others as the web serves them: half size, q80
            downloaded = original if position < 2 else \
                photos.encode(photos.scaled(pictures[name], 0.5), quality=80)
            uid = f"copy-{position}"
            if position < 2:
                expected_exact[uid] = f"evalset/{file}"
            expected_copies.add(uid)
        else:
            downloaded = original
            uid = f"other-{position}"
            others.add(uid)
        stored = process_image(downloaded, ImageSettings()).jpeg   # what a training shard holds
        phash, signature = image_hashes(stored)
        rows.append({"uid": uid, "sha256": hashlib.sha256(downloaded).hexdigest(),
                     "phash": phash, "signature": signature, "raw_shard": 0,
                     "position": position})
    index = tmp_path / "00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([
        ("uid", pa.string()), ("sha256", pa.string()), ("phash", pa.uint64()),
        ("signature", pa.uint64()), ("raw_shard", pa.int32()), ("position", pa.int32())])), index)

    removals = contaminated([(str(index), len(rows))], hash_sets([str(folder)]), 4, True)
    found = {row["uid"]: row for row in removals.to_pylist()}
    assert all(row["kind"] == "eval" for row in found.values())
    for uid, name in expected_exact.items():
        assert (found[uid]["duplicate_of"], found[uid]["distance"]) == (name, 0)
    assert not set(found) & others                                 # no other photo taken
    assert len(set(found) & expected_copies) >= EVAL_PHOTOS - 1    # web copies found
    print(f"{len(set(found) & expected_copies)} of {EVAL_PHOTOS} copies found, "
          f"{len(others)} other photos kept")
